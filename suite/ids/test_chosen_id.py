"""Write, then create: the next object gets the id the file names (NOTES.md "next_id (seed 004) and its
mainline descendants": ns_last_pid, {msg,sem,shm}_next_id)."""

from __future__ import annotations

import errno

import pytest

from harness.oracle.model import RESERVED_PIDS

from ..spec import CURSOR_FILES, NUMERIC_ID_FILES


def test_the_next_object_gets_the_chosen_id(ids, id_profile):
    spec = ids.chain(1)
    ids.start(spec)
    want = ids.free_id(spec, 1)
    steps = [*id_profile.choose_steps(want, at=1), id_profile.create_step(at=1)]
    write, made = ids.run(steps, spec)[-2:]
    ids.remove(made, spec, at=1)
    assert write["errno"] == 0, write
    assert (made["ret"], made["errno"]) == (want, 0)


@pytest.mark.profiles(*NUMERIC_ID_FILES)  # next_id reads empty: suite/ids/test_next_id.py
def test_after_the_creation_the_file_reads_as_the_spec_says(ids, id_profile):
    """ns_last_pid reads the last pid handed out; the IPC files read -1: the creation consumed the id."""
    spec = ids.chain(1)
    ids.start(spec)
    want = ids.free_id(spec, 1)
    made, read = ids.run([*id_profile.choose_steps(want, at=1), id_profile.create_step(at=1),
                          id_profile.read_step(at=1)], spec)[-2:]
    ids.remove(made, spec, at=1)
    expected = made["ret"] if ids.spec.reads_after_create == "created" else -1
    assert int(read["data"]) == expected, read


def test_a_busy_id_gives_what_the_spec_says(ids, id_profile):
    """ns_last_pid and the IPC files never fail on a busy id: the next free pid (index) is taken; an IPC id
    keeps the sequence number that was asked for."""
    spec = ids.chain(1)
    ids.start(spec)
    busy = ids.make_busy(spec, 1)
    made = ids.run([*id_profile.choose_steps(busy, at=1), id_profile.create_step(at=1)], spec)[-1]
    ids.remove(made, spec, at=1)
    if ids.spec.busy_errno is None:
        assert (made["ret"], made["errno"]) == (busy + 1, 0)
    else:
        assert made["errno"] == ids.spec.busy_errno, made


def test_values_out_of_range_are_einval_and_change_nothing(ids, id_profile):
    spec = ids.chain(1)
    reply = ids.start(spec)
    highest = reply["chain"]["pid_maxes"][1] if ids.spec.highest == "pid_max" else ids.spec.highest
    before = ids.run([id_profile.read_step(at=1)], spec)[0]
    results = ids.run([*id_profile.write_steps("-1", at=1), *id_profile.write_steps(str(highest + 1), at=1),
                       id_profile.read_step(at=1)], spec)
    assert [r["errno"] for r in results[:2]] == [errno.EINVAL, errno.EINVAL]
    assert results[2]["data"] == before["data"]


@pytest.mark.profiles(*NUMERIC_ID_FILES)
@pytest.mark.parametrize("value", ["0", "highest"])
def test_the_ends_of_the_range_are_accepted_and_read_back(ids, id_profile, value):
    spec = ids.chain(1)
    reply = ids.start(spec)
    highest = reply["chain"]["pid_maxes"][1] if ids.spec.highest == "pid_max" else ids.spec.highest
    raw = str(highest) if value == "highest" else value
    write, read = ids.run([*id_profile.write_steps(raw, at=1), id_profile.read_step(at=1)], spec)
    assert (write["errno"], int(read["data"])) == (0, int(raw))


@pytest.mark.profiles(*CURSOR_FILES)
def test_the_write_moves_only_the_writers_pid_namespace(ids, id_profile):
    """The child of a level-2 writer gets the chosen pid at level 2 only; level 1 hands out its own next pid
    (the cursor written is the writer's active namespace's, not its parent's)."""
    spec = ids.chain(2)
    ids.start(spec, own_ipc_at=())
    want = ids.free_id(spec, 2)
    outer_before, _, made, outer_after = ids.run([id_profile.read_step(at=1), *id_profile.choose_steps(want, at=2),
                                                  id_profile.create_step(at=2), id_profile.read_step(at=1)],
                                                 spec)[-4:]
    nspid = made["child"]["nspid"]
    assert nspid[2] == want, made
    assert nspid[1] != want and int(outer_after["data"]) == nspid[1] > int(outer_before["data"])


@pytest.mark.profiles(*CURSOR_FILES)
def test_a_cursor_at_pid_max_wraps_to_the_reserved_pids(ids, id_profile):
    """NOTES.md ns_last_pid: the next free pid above N, cyclic, and above 300 once the namespace passed it:
    writing pid_max sends the next fork back to the first free pid from RESERVED_PIDS (300) up."""
    spec = ids.chain(1)
    reply = ids.start(spec, own_ipc_at=())
    highest = reply["chain"]["pid_maxes"][1]
    made = ids.run([*id_profile.write_steps(str(highest), at=1), id_profile.create_step(at=1)], spec)[-1]
    assert made["errno"] == 0, made
    assert RESERVED_PIDS <= made["ret"] < RESERVED_PIDS + 16, made
