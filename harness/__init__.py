"""Host side of the eclone/clone3 conformance suite: kernels, VMs, targets, profiles, CLI."""
