"""``topfib simulate``: a thin shell over :func:`topfib.controller.sim.simulate.run_simulate`."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Annotated

import typer

# SimulationSettings.warmup_s (five slow half-lives), here so the CLI starts without numpy
DEFAULT_WARMUP_S = 18000.0


def simulate_command(
    rib: Annotated[Path, typer.Option("--rib", help="MRT dump or pfx2as file")],
    traffic: Annotated[str, typer.Option("--traffic", help="zipf:ALPHA or a capture file")],
    cap: Annotated[str, typer.Option("--cap", help="FIB cap(s), comma separated")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per cap")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="write routes-vs-traffic PNG")] = None,
    duration: Annotated[float, typer.Option("--duration", help="simulated seconds measured")] = 3600.0,
    seed: Annotated[int, typer.Option("--seed", help="random seed")] = 1,
    warmup: Annotated[
        float, typer.Option("--warmup", help="simulated seconds before measuring (steady state)")
    ] = DEFAULT_WARMUP_S,
    restart_at: Annotated[
        float | None, typer.Option("--restart-at", help="a warm restart at this simulated second")
    ] = None,
) -> None:
    """Replay traffic through accounting and selection; report coverage vs the oracle per cap."""
    if plot is not None and find_spec("matplotlib") is None:  # an optional extra: say so before the run
        typer.echo("--plot needs matplotlib: pip install 'topfib[plot]'", err=True)
        raise typer.Exit(2)
    from topfib.controller.sim.simulate import run_simulate

    caps = [int(c) for c in cap.split(",") if c.strip()]
    raise typer.Exit(run_simulate(rib, traffic, caps, as_json, plot, duration, seed, warmup,
                                 restart_at))
