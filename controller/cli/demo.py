"""``topfib demo``: a thin shell over :func:`topfib.controller.demo.demo.run_demo`."""

from __future__ import annotations

from typing import Annotated

import typer


def demo_command(
    duration: Annotated[float, typer.Option("--duration", help="seconds to run (0: until Ctrl-C)")] = 0.0,
) -> None:
    """A self-contained lab: topfib, a switch stand-in, replayed traffic and a live view."""
    from topfib.controller.demo.demo import run_demo

    raise typer.Exit(run_demo(duration))
