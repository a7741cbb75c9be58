"""Load the suite's pytest plugin (options, target and profile fixtures, crash hand-off)."""

pytest_plugins = ["harness.pytest_plugin"]
