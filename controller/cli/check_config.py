"""``topfib check-config FILE``: validate a config file as ``topfib run`` would, without starting."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def check_config_file(path: Path) -> int:
    """CLI body of ``topfib check-config``: 0 when valid, 2 with the bad key on stderr."""
    # imported here: the config models and TLS take a while to load, and only this command needs them
    from topfib.api.transport.tls import build_tls_context
    from topfib.controller.config import ConfigError, load_config

    try:
        config = load_config(path)
        build_tls_context(config.api)  # the files must be readable PEM, as `topfib run` needs them
    except ConfigError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 2
    print(f"{path}: ok ({len(config.switch)} switch(es))")
    return 0


def check_config_command(config: Annotated[Path, typer.Argument(help="TOML config file")]) -> None:
    """Validate a config file; exit non-zero naming the bad key."""
    raise typer.Exit(check_config_file(config))
