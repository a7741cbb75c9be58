"""Names of the sections the suite's pytest plugin adds to a failed test's report, read back by `harness fuzz`.

"Captured stdout ..." makes pytest show the kernel console as it shows captured output."""

CONSOLE = "Captured stdout kernel console"
REPRODUCER = "reproducer"

CRASH_PREFIX = "kernel crash during test: "  # the first line of a test failed by a console crash
