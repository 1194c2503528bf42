"""The ``topfib`` command: one typer app, a module per command.

Each command module is a thin shell over the module that does the work, imported when the command
runs, so ``topfib --help`` and the light commands start without numpy, the RIB or the config models.
"""

from __future__ import annotations

import typer

from topfib.controller.cli import (
    check_config,
    ctl,
    decode,
    demo,
    replay,
    rib,
    run,
    simulate,
    tokens,
    version,
)

app = typer.Typer(help="topfib: fit a peering edge's traffic into a small-FIB switch.",
                  no_args_is_help=True, add_completion=False)
app.command("version")(version.version_command)
app.command("run")(run.run_command)
app.command("check-config")(check_config.check_config_command)
app.command("decode")(decode.decode_command)
app.command("replay")(replay.replay_command)
app.command("simulate")(simulate.simulate_command)
app.command("demo")(demo.demo_command)
app.add_typer(rib.rib_app, name="rib")
app.add_typer(tokens.token_app, name="token")
app.add_typer(ctl.ctl_app, name="ctl")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
