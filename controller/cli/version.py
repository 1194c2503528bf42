"""``topfib version``."""

from __future__ import annotations

import typer


def version_command() -> None:
    """Print topfib's version."""
    from importlib.metadata import version

    typer.echo(version("topfib"))
