"""``topfib run``: a thin shell over :func:`topfib.controller.service.run.run_service`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from topfib.controller.service.log_format import LogFormat


def run_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="TOML config file")],
    log_format: Annotated[LogFormat, typer.Option(
        "--log-format", help="text, or json: one object per line (time, level, logger, message, extra fields)"
    )] = LogFormat.TEXT,
) -> None:
    """Run collector, controller and API in one process (ExaBGP supervised as a child)."""
    from topfib.controller.service.run import run_service

    raise typer.Exit(run_service(config, log_format))
