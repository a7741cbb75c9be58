"""Kernel coverage of the eclone code (`run --coverage`): build, collect from debugfs, gcov, report."""
