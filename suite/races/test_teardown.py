"""Cloning into a pid namespace whose init is being killed: the call succeeds (the child is then killed
with the namespace) or fails with ENOMEM; no crash, and the pids it asked for outside stay free.

Linux 6.1 documents ENOMEM for this (kernel/pid.c, alloc_pid(): "ENOMEM is not the most obvious choice
especially for the case where the child subreaper has already exited and the pid namespace denies the
creation of any new processes"): zap_pid_ns_processes() clears PIDNS_ADDING when the init exits, after
which alloc_pid() fails with -ENOMEM (`if (!(ns->pid_allocated & PIDNS_ADDING)) goto out_unlock;`),
as does copy_process() ("Don't start children in a dying pid namespace"), freeing every level it took.
"""

from __future__ import annotations

import errno

from harness.programs import chain

from ..spec import spec_of
from .conftest import CLONE_NEWPID, CLONE_VM

ASKERS = 2
NAMESPACE_DYING = errno.ENOMEM  # NOTES.md "Newer kernels" (b26ebfe12f34: ENOMEM, not EPERM, also with set_tid)


def test_clone_into_a_namespace_whose_init_is_killed_succeeds_or_fails_with_enomem(races, profile):
    """Before every round the level-0 worker starts an init of a new namespace; askers join that namespace
    for their children (setns) before the barrier, and one racer kills the init as the others call.
    eclone's vector ends at the caller's own level (the new namespace's pid is the kernel's choice);
    clone3's set_tid starts in the child's namespace, so it also names a pid there."""
    spec = chain(0)
    outer = races.free([0] * (ASKERS + 1), spec)
    init = races.spawn(None, 0, child="hold", flags=CLONE_NEWPID, **{"as": "init"})
    killer = {"op": "release", "at": 0, "name": "init"}
    inside = 2  # a free pid in the new namespace, where only the init (pid 1) ever lived
    into_new = spec_of(profile.name).anchor == "child"  # clone3's set_tid also names the new namespace's pid
    askers = [races.spawn([outer[i], inside + i] if into_new else [outer[i]], 0,
                          child="exit", flags=CLONE_VM, pidns_of="init") for i in range(ASKERS)]
    run = races.run([killer, *askers], spec, setup=[init],
                    after=[races.spawn([pid], 0, child="exit", flags=CLONE_VM) for pid in outer[:ASKERS]])
    seen = set()
    for rnd in run.rounds:
        kill, *asked = rnd.racers
        assert rnd.setup[0]["errno"] == 0 and kill["ok"], f"round {rnd.index}: no init to kill: {rnd.setup}"
        for i, r in enumerate(asked):
            assert r["errno"] in (0, NAMESPACE_DYING), f"round {rnd.index}: asker {i}: {r}"
            if r["errno"] == 0:
                assert r["ret"] == outer[i], f"round {rnd.index}: asker {i} asked for {outer[i]}: {r}"
            seen.add(r["errno"])
    for pid, res in zip(outer, run.after, strict=False):
        assert res["errno"] == 0, f"pid {pid} is not free after the race (outcomes seen: {sorted(seen)})"
