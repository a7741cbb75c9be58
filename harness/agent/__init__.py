"""Guest agent: a dumb executor of programs (see PROGRAMS.md); stdlib only, relative imports only."""
