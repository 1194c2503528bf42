"""The ``topfib`` command. Each subcommand is a thin shell over a module that does the work."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Annotated

import typer

from topfib.controller.cli.ctl import ctl_app
from topfib.controller.service.log_format import LogFormat

# SimulationSettings.warmup_s (five slow half-lives), here so the CLI starts without numpy
DEFAULT_WARMUP_S = 18000.0

app = typer.Typer(help="topfib: fit a peering edge's traffic into a small-FIB switch.",
                  no_args_is_help=True, add_completion=False)
rib_app = typer.Typer(help="Inspect a RIB file (MRT dump or CAIDA pfx2as).", no_args_is_help=True)
token_app = typer.Typer(help="API bearer tokens.", no_args_is_help=True)
app.add_typer(rib_app, name="rib")
app.add_typer(token_app, name="token")
app.add_typer(ctl_app, name="ctl")


@app.command()
def version() -> None:
    """Print topfib's version."""
    from importlib.metadata import version as pkg_version

    typer.echo(pkg_version("topfib"))


@app.command()
def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="TOML config file")],
    log_format: Annotated[LogFormat, typer.Option(
        "--log-format", help="text, or json: one object per line (time, level, logger, message, extra fields)"
    )] = LogFormat.TEXT,
) -> None:
    """Run collector, controller and API in one process (ExaBGP supervised as a child)."""
    from topfib.controller.service.run import run_service

    raise typer.Exit(run_service(config, log_format))


@app.command("check-config")
def check_config(config: Annotated[Path, typer.Argument(help="TOML config file")]) -> None:
    """Validate a config file; exit non-zero naming the bad key."""
    from topfib.controller.cli.check_config import check_config_file

    raise typer.Exit(check_config_file(config))


@app.command()
def decode(files: Annotated[list[Path], typer.Argument(help="pcap/pcapng or raw payload files")]) -> None:
    """Decode flow datagrams and print one JSON object per flow sample."""
    from topfib.controller.cli.decode import run_decode

    raise typer.Exit(run_decode(files))


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(help="capture or raw payload file")],
    to: Annotated[str, typer.Option("--to", help="HOST:PORT to send to")],
    rate: Annotated[float, typer.Option("--rate", help="samples per second (0: as fast as possible)")] = 0.0,
    loop: Annotated[bool, typer.Option("--loop", help="repeat until interrupted")] = False,
) -> None:
    """Send a capture's sFlow payloads over UDP."""
    from topfib.collector.flow.replay import run_replay

    raise typer.Exit(run_replay(file, to, rate, loop))


@rib_app.command("lookup")
def rib_lookup(
    rib: Annotated[Path, typer.Option("--rib", help="MRT dump or pfx2as file")],
    ips: Annotated[list[str], typer.Argument(help="addresses to look up")],
) -> None:
    """Longest match and paths for each address, one JSON object per line."""
    from topfib.controller.cli.rib import run_lookup

    raise typer.Exit(run_lookup(rib, ips))


@rib_app.command("stats")
def rib_stats(
    rib: Annotated[Path, typer.Option("--rib", help="MRT dump or pfx2as file")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Prefix and path counts per address family."""
    from topfib.controller.cli.rib import run_stats

    raise typer.Exit(run_stats(rib, as_json))


@app.command()
def simulate(
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


@token_app.command("new")
def token_new(
    role: Annotated[str, typer.Option("--role", help="ap | operator | viewer")],
    name: Annotated[str, typer.Option("--name", help="client name")],
) -> None:
    """Print a fresh token and the [[token]] config entry holding its hash."""
    from topfib.api.tokens import run_token_new

    raise typer.Exit(run_token_new(role, name))


@app.command()
def demo(
    duration: Annotated[float, typer.Option("--duration", help="seconds to run (0: until Ctrl-C)")] = 0.0,
) -> None:
    """A self-contained lab: topfib, a switch stand-in, replayed traffic and a live view."""
    from topfib.controller.demo.demo import run_demo

    raise typer.Exit(run_demo(duration))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
