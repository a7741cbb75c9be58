"""`python -m harness fuzz`: the hypothesis `fuzz` profile of the state machines and property tests, on N VMs
(pytest-xdist, one VM per worker) until a deadline, with one shared example database.

config.py (options), plugin.py (the pytest side: repeat tests, count, title failures, stream reports),
failures.py (titles and dedupe), session.py (pytest runs in their own process group, live line, clean stop),
report.py (the final report and fuzz.json), command.py (the CLI entry).
"""
