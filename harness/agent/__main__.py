"""CLI: python3 -S -m agent --channel stdio|/dev/ttyS1|auto:/dev/ttyS1 [--init] [--sandbox] [--list-deps]."""

from __future__ import annotations

import sys


def _parse(argv: list[str]) -> dict[str, object]:
    """A tiny parser (argparse would pull more modules into the initramfs)."""
    opts: dict[str, object] = {"channel": "stdio", "init": False, "sandbox": False, "list_deps": False}
    it = iter(argv)
    for arg in it:
        if arg == "--channel":
            opts["channel"] = next(it, "stdio")
        elif arg in ("--init", "--sandbox", "--list-deps"):
            opts[arg[2:].replace("-", "_")] = True
        else:
            raise SystemExit(f"agent: unknown argument {arg!r}")
    return opts


def _serve(opts: dict[str, object]) -> None:
    from . import channel
    from .server import Server

    where = str(opts["channel"])
    if where == "stdio":
        chan = channel.open_stdio()
    elif where.startswith("auto:"):  # the guest's /init: virtio-serial if the kernel has it, else the tty
        chan = channel.open_auto(where[len("auto:"):])
    else:
        chan = channel.open_tty(where)
    Server(chan).serve()


def main(argv: list[str] | None = None) -> int:
    """Entry point for `-m agent` and for the guest's /init (which passes argv)."""
    opts = _parse(sys.argv[1:] if argv is None else argv)
    if opts["list_deps"]:
        from .deps import main as deps_main
        return deps_main()
    if opts["sandbox"]:
        from . import sandbox
        sandbox.enter()
    if not opts["init"]:
        _serve(opts)
        return 0
    from . import guest_init
    try:
        guest_init.setup()
        _serve(opts)
    except BaseException:  # pid 1 must not exit: say why on the console, then power off
        import traceback
        traceback.print_exc()
    guest_init.power_off()
    return 1


if __name__ == "__main__":
    sys.exit(main())
