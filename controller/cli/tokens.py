"""``topfib token new``: a thin shell over :func:`topfib.api.tokens.run_token_new`."""

from __future__ import annotations

from typing import Annotated

import typer

token_app = typer.Typer(help="API bearer tokens.", no_args_is_help=True)


@token_app.command("new")
def token_new(
    role: Annotated[str, typer.Option("--role", help="ap | operator | viewer")],
    name: Annotated[str, typer.Option("--name", help="client name")],
) -> None:
    """Print a fresh token and the [[token]] config entry holding its hash."""
    from topfib.api.tokens import run_token_new

    raise typer.Exit(run_token_new(role, name))
