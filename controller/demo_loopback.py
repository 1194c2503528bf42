"""``topfib demo`` without root: the switch stand-in is a second ExaBGP on a loopback address."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.console import Console


async def loopback_demo(duration: float, console: Console, workdir: Path, stop: asyncio.Event) -> int:
    console.print("the loopback switch stand-in is not available yet: run the demo as root "
                  "(scripts/demo.sh uses sudo when needed)")
    return 2
