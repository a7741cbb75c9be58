"""Reproducers of failing programs: replayable JSON and standalone C."""
