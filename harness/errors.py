"""Failure types the CLI turns into one clear line (exit 2), after KUnit's ConfigError/BuildError."""


class HarnessError(Exception):
    """Anything the user or the environment must fix; its message is one line."""


class ConfigError(HarnessError):
    """A kernel config lacks an option the suite needs, or a fragment is malformed."""


class BuildError(HarnessError):
    """The kernel or the initramfs did not build."""


class BootError(HarnessError):
    """The kernel did not boot to a ready agent (not a kernel, no serial console, hung)."""


class BootCrash(BootError):
    """The kernel crashed before the agent was ready: booting again (or on another machine) will not help."""


class QemuStartError(BootError):
    """QEMU itself did not start (bad option, missing firmware): no retry either."""


class EnvError(HarnessError):
    """The machine lacks something (QEMU binary, source package, user namespaces)."""


class SandboxUnavailable(EnvError):
    """The host target's user+pid namespaces cannot be created here (a chroot, a container's seccomp
    profile, user namespaces disabled); the QEMU target still works."""


class UsageError(HarnessError):
    """Bad command-line values."""


class AgentError(HarnessError):
    """The agent answered with an error, or stopped answering."""


class AgentLost(AgentError):
    """The agent stopped answering: timed out, closed its channel, or the channel broke."""


class ProgramError(AgentError):
    """A program could not be carried out (as opposed to a syscall that returned an error)."""


class GuestCrash(AgentError):
    """The kernel crashed (oops, BUG, panic, ...) while a program ran; carries the console excerpt."""

    def __init__(self, title: str, excerpt: str) -> None:
        super().__init__(title)
        self.title = title
        self.excerpt = excerpt
