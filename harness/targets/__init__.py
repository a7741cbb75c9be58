"""Targets run programs: a QEMU guest or a sandbox on the running kernel."""
