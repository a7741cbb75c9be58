"""Who may write: CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE over the user namespace that owns the namespace the
file acts on (the writer's active pid namespace, its IPC namespace). NOTES.md: ns_last_pid refuses with EPERM;
the IPC files are 0444 to anyone else (the open fails with EACCES)."""

from __future__ import annotations

import pytest

from ..spec import IDS_OF_IPC_OBJECTS, NUMERIC_ID_FILES


def test_the_root_of_the_owning_user_namespace_chooses_in_a_nested_namespace(ids, id_profile):
    spec = ids.chain(2)
    ids.start(spec, own_ipc_at=(2,))
    want = ids.free_id(spec, 2)
    made = ids.run([*id_profile.choose_steps(want, at=2), id_profile.create_step(at=2)], spec)[-1]
    ids.remove(made, spec, at=2)
    assert (made["ret"], made["errno"]) == (want, 0)


@pytest.mark.profiles(*NUMERIC_ID_FILES)  # next_id: privilege is judged at the creation
def test_without_the_capability_the_write_is_refused_and_changes_nothing(ids, id_profile):
    """Level 2 keeps no capability in its own user namespace (and its IPC namespace is its ancestors')."""
    spec = ids.chain(2, caps={2: []})
    ids.start(spec, own_ipc_at=())
    before, write, after = ids.run([id_profile.read_step(at=2), *id_profile.write_steps("1000", at=2),
                                    id_profile.read_step(at=2)], spec)
    assert write["errno"] == ids.spec.denied_errno, write
    assert after["data"] == before["data"]


@pytest.mark.profiles(*sorted(set(IDS_OF_IPC_OBJECTS) & set(NUMERIC_ID_FILES)))  # pid ns: the worker's own
def test_root_of_a_user_namespace_cannot_write_for_a_namespace_its_ancestor_owns(ids, id_profile):
    """Level 2 is root in its own user namespace with every capability there, but its IPC namespace is still
    the agent's (owned by an ancestor user namespace)."""
    spec = ids.chain(2)
    ids.start(spec, own_ipc_at=())
    before, write, after = ids.run([id_profile.read_step(at=2), *id_profile.write_steps("1000", at=2),
                                    id_profile.read_step(at=2)], spec)
    assert write["errno"] == ids.spec.denied_errno, write
    assert after["data"] == before["data"]
