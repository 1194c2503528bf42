"""``python -m topfib.controller.exabgp.launch server CONF``: ExaBGP's server, minus one idle wait.

ExaBGP 5's reactor runs each API command as a generator, at most 50 steps per loop turn, and then
waits in poll() for ``reactor_speed``/100 s even when steps are still queued: a 1000-prefix
announce line waits out that poll timeout many times. A low ``reactor_speed`` (0.1: 1 ms) made
programming fast but woke the idle ExaBGP 1000 times a second. With this launcher the wait is
skipped while API work is queued, so programming no longer depends on ``reactor_speed`` and it can
stay at a value that keeps the idle process asleep. Another ExaBGP (no such loop) runs unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any


def skip_wait_while_api_work_is_queued() -> bool:
    """Wrap the reactor's poll so that it does not sleep while commands are pending; False when
    this ExaBGP has no such reactor (then it runs as it is)."""
    try:
        from exabgp.reactor.loop import Reactor
    except ImportError:
        return False
    original: Callable[[Any, int], Iterator[int]] | None = getattr(Reactor, "_wait_for_io", None)
    if original is None or getattr(original, "skips_queued_wait", False):
        return original is not None

    def wait_for_io(reactor: Any, sleeptime: int) -> Iterator[int]:
        if not reactor.asynchronous.ready():  # commands still have steps to run
            sleeptime = 0
        return original(reactor, sleeptime)

    wait_for_io.skips_queued_wait = True  # type: ignore[attr-defined]
    Reactor._wait_for_io = wait_for_io
    return True


def main() -> int:
    skip_wait_while_api_work_is_queued()
    from exabgp.application.main import main as exabgp_main

    sys.argv[0] = "exabgp"
    result: int | None = exabgp_main()
    return result or 0


if __name__ == "__main__":
    sys.exit(main())
