"""The crash scanner on captured console logs (tests/data/crash), KUnit-parser style."""

from pathlib import Path

import pytest

from harness.crash_scan import CrashScanner, scan, strip_prefix

DATA = Path(__file__).parent / "data" / "crash"

# file -> (title, kind); None = a clean log. Real boots: clean_boot_*, sysrq_panic_*.
EXPECTED = {
    "clean_boot_microvm.log": None,
    "sysrq_panic_microvm.log": ("kernel panic: sysrq triggered crash", "panic"),
    "sysrq_panic_q35.log": ("kernel panic: sysrq triggered crash", "panic"),
    "kasan_slab_oob.log": ("KASAN: slab-out-of-bounds Read in alloc_pid", "kasan"),
    "kcsan_data_race.log": ("KCSAN: data-race in alloc_pid / free_pid", "kcsan"),
    "warning_alloc_pid.log": ("WARNING in alloc_pid", "warning"),
    "lockdep_circular.log": ("possible deadlock in alloc_pid", "lockdep"),
    "lockdep_inconsistent.log": ("inconsistent lock state in free_pid", "lockdep"),
    "hung_task.log": ("INFO: task hung in zap_pid_ns_processes", "hang"),
    "soft_lockup.log": ("BUG: soft lockup in idr_alloc_cyclic", "lockup"),
    "rcu_stall.log": ("INFO: rcu detected stall in free_pid", "stall"),
    "ubsan_shift.log": ("UBSAN: shift-out-of-bounds in kernel/pid.c", "ubsan"),
    "null_deref_oops.log": ("BUG: kernel NULL pointer dereference in put_pid", "oops"),
    "sleeping_in_atomic.log": ("BUG: sleeping function called from invalid context in alloc_pid", "bug"),
    # KCSAN's and lockdep's other report shapes (kernel/kcsan/report.c, kernel/locking/lockdep.c in 6.1)
    "kcsan_assert_race.log": ("KCSAN: assert: race in alloc_pid / free_pid", "kcsan"),
    "kcsan_unknown_origin.log": ("KCSAN: data-race in alloc_pid", "kcsan"),
    "lockdep_irq_inversion.log": ("possible deadlock in alloc_pid", "lockdep"),
    "lockdep_safe_unsafe.log": ("possible deadlock in free_pid", "lockdep"),
    "lockdep_invalid_wait_context.log": ("BUG: Invalid wait context in alloc_pid", "lockdep"),
    "lockdep_locks_held_exit.log": ("still has locks held in do_exit", "lockdep"),
}


def test_every_captured_log_has_an_expectation():
    assert sorted(p.name for p in DATA.glob("*.log")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_log_gives_expected_title_and_kind(name):
    crash = scan((DATA / name).read_text())
    if EXPECTED[name] is None:
        assert crash is None
    else:
        assert (crash.title, crash.kind) == EXPECTED[name]


@pytest.mark.parametrize("name", [n for n, e in EXPECTED.items() if e])
def test_incremental_feed_in_small_chunks_matches_whole_scan(name):
    text = (DATA / name).read_text()
    scanner = CrashScanner()
    for i in range(0, len(text), 7):
        scanner.feed(text[i:i + 7])
    scanner.close()
    assert scanner.crash == scan(text)


@pytest.mark.parametrize("name", [n for n, e in EXPECTED.items() if e])
def test_excerpt_starts_at_the_report_and_is_bounded(name):
    crash = scan((DATA / name).read_text())
    assert "Run /init" not in crash.excerpt
    assert len(crash.excerpt.splitlines()) <= 60
    assert "[" not in crash.title


def test_kasan_excerpt_ends_at_closing_rule():
    crash = scan((DATA / "kasan_slab_oob.log").read_text())
    assert crash.excerpt.splitlines()[-1].startswith("=====")
    assert "Disabling lock debugging" not in crash.excerpt


def test_warning_excerpt_includes_cut_here_line():
    crash = scan((DATA / "warning_alloc_pid.log").read_text())
    assert crash.excerpt.startswith("------------[ cut here ]")


def test_panic_after_oops_is_the_same_crash():
    scanner = CrashScanner()
    scanner.feed((DATA / "null_deref_oops.log").read_text())
    scanner.close()
    assert len(scanner.crashes) == 1


def test_crash_is_visible_before_the_report_is_complete():
    scanner = CrashScanner()
    scanner.feed("[    1.0] BUG: KASAN: use-after-free in free_pid+0x1/0x2\n[    1.1] Write of size 8 at addr ffff\n")
    assert scanner.crash is not None and scanner.crash.title == "KASAN: use-after-free Write in free_pid"


def test_two_reports_are_both_listed():
    text = (DATA / "warning_alloc_pid.log").read_text() + (DATA / "kasan_slab_oob.log").read_text()
    scanner = CrashScanner()
    scanner.feed(text)
    scanner.close()
    assert [c.kind for c in scanner.crashes] == ["warning", "kasan"]


def test_timestamp_and_caller_id_are_stripped():
    assert strip_prefix("[   12.345678][    T1] BUG: x") == "BUG: x"
    assert strip_prefix("[    0.000000] Linux version") == "Linux version"


def test_race_suite_reports_are_recognised_when_they_interrupt_a_clean_boot():
    """What issue 6's race suite relies on: a KCSAN or lockdep report anywhere in a clean console log
    is a crash of its own kind, whatever came before it."""
    clean = (DATA / "clean_boot_microvm.log").read_text()
    for name, kind in (("kcsan_data_race.log", "kcsan"), ("kcsan_assert_race.log", "kcsan"),
                       ("lockdep_irq_inversion.log", "lockdep"), ("lockdep_circular.log", "lockdep")):
        crash = scan(clean + (DATA / name).read_text())
        assert crash is not None and crash.kind == kind, name
