"""``topfib ctl``: operate a running topfib through its HTTP API, as ``birdc`` does BIRD.

Each command is one API call (:mod:`topfib.controller.cli.ctl_client`), printed as a table
(:mod:`topfib.controller.cli.ctl_format`) or, with ``--json``, as the API's JSON on one line. Exit codes are
:class:`topfib.controller.cli.ctl_client.ExitCode`.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from topfib.controller.cli import ctl_format
from topfib.controller.cli.ctl_client import CtlError, Endpoint, ExitCode, call, path_segment, terminal_text

DEFAULT_URL = "http://127.0.0.1:8080"
# the ctl names of the switch settings the operators type most; the API's names work too
SETTING_ALIASES = {"cap_ipv4": "fib_cap_ipv4", "cap_ipv6": "fib_cap_ipv6", "cap_ipv4_24": "fib_cap_ipv4_24"}
CLEAR_VALUES = ("default", "null")

ctl_app = typer.Typer(help="Operate a running topfib through its API (TOPFIB_URL, TOPFIB_TOKEN).",
                      no_args_is_help=True)
request_app = typer.Typer(help="Route requests, as an access point makes them.", no_args_is_help=True)
pin_app = typer.Typer(help="Pinned prefixes (operator).", no_args_is_help=True)
ctl_app.add_typer(request_app, name="request")
ctl_app.add_typer(pin_app, name="pin")

JsonOption = Annotated[bool, typer.Option("--json", help="print the API's JSON instead of a table")]
SwitchOption = Annotated[str | None, typer.Option("--switch", "-s", help="switch name (optional with one)")]


@ctl_app.callback()
def connect(
    ctx: typer.Context,
    url: Annotated[str, typer.Option("--url", envvar="TOPFIB_URL", help="topfib's API")] = DEFAULT_URL,
    token: Annotated[str | None, typer.Option(
        "--token", envvar="TOPFIB_TOKEN", show_default=False,
        help="bearer token (prefer the environment or --token-file: arguments show in ps)")] = None,
    token_file: Annotated[Path | None, typer.Option(
        "--token-file", envvar="TOPFIB_TOKEN_FILE", help="file holding the bearer token")] = None,
    ca_file: Annotated[Path | None, typer.Option(
        "--ca-file", envvar="TOPFIB_CA_FILE", help="CA certificate(s) verifying an https:// API")] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="seconds to wait for answers")] = 10.0,
) -> None:
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            _fail(CtlError(ExitCode.USAGE, f"--token-file {token_file}: {exc.strerror}"))
    ctx.obj = Endpoint(url=url, token=token or None, ca_file=str(ca_file) if ca_file else None,
                       timeout_s=timeout)


def _fail(error: CtlError) -> NoReturn:
    print(f"topfib ctl: {error}", file=sys.stderr)
    raise typer.Exit(int(error.code))


def _call(ctx: typer.Context, method: str, path: str, body: Any = None) -> Any:
    try:
        return call(ctx.obj, method, path, body)[1]
    except CtlError as error:
        _fail(error)


def _segment(text: str, keep: str) -> str:
    try:
        return path_segment(text, keep)
    except CtlError as error:
        _fail(error)


def _show(answer: Any, as_json: bool, table: Callable[[Any], Table]) -> None:
    if as_json:
        print(json.dumps(answer))
    else:
        Console().print(table(answer))


def _switch_query(switch: str | None) -> str:
    return f"switch={_segment(switch, '')}" if switch else ""


@ctl_app.command()
def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Sessions, FIB occupancy against the caps, coverage, churn, collector rates."""
    _show(_call(ctx, "GET", "/v1/status"), as_json, ctl_format.status_table)


@ctl_app.command()
def fib(ctx: typer.Context, switch: SwitchOption = None, as_json: JsonOption = False) -> None:
    """Routes installed in the switch and why."""
    _show(_call(ctx, "GET", f"/v1/fib?{_switch_query(switch)}"), as_json, ctl_format.fib_table)


@ctl_app.command()
def top(
    ctx: typer.Context,
    switch: SwitchOption = None,
    n: Annotated[int, typer.Option("-n", min=1, max=100_000, help="how many prefixes")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Prefixes ranked by traffic, with the sampling error and whether each is installed."""
    answer = _call(ctx, "GET", f"/v1/top?n={n}&{_switch_query(switch)}")
    _show(answer, as_json, ctl_format.top_table)


@ctl_app.command()
def rib(ctx: typer.Context, ip: Annotated[str, typer.Argument(help="address")],
        as_json: JsonOption = False) -> None:
    """Longest match for an address in each switch's RIB, with its paths."""
    _show(_call(ctx, "GET", f"/v1/rib/{_segment(ip, ':')}"), as_json, ctl_format.rib_table)


@request_app.command("add")
def request_add(
    ctx: typer.Context,
    ips: Annotated[list[str], typer.Argument(help="addresses whose routes are wanted")],
    ttl: Annotated[float | None, typer.Option(
        "--ttl", min=0.001, help="seconds (default: the switch's)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Ask for the routes of these addresses; exits 1 if any was rejected."""
    body: dict[str, Any] = {"ips": ips}
    if ttl is not None:
        body["ttl_s"] = ttl
    answer = _call(ctx, "POST", "/v1/requests", body)
    _show(answer, as_json, ctl_format.request_results_table)
    if any(result["status"] == "rejected" for result in answer["results"]):
        raise typer.Exit(int(ExitCode.REFUSED))


@request_app.command("del")
def request_del(ctx: typer.Context, ip: Annotated[str, typer.Argument(help="address")],
                as_json: JsonOption = False) -> None:
    """End this token's request for an address on every switch."""
    _call(ctx, "DELETE", f"/v1/requests/{_segment(ip, ':')}")
    _done(as_json, {"deleted": ip}, f"request for {ip} ended")


@request_app.command("list")
def request_list(ctx: typer.Context, switch: SwitchOption = None, as_json: JsonOption = False) -> None:
    """Active requests, newest first."""
    answer = _call(ctx, "GET", f"/v1/requests?{_switch_query(switch)}")
    _show(answer, as_json, ctl_format.request_list_table)


@pin_app.command("add")
def pin_add(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="prefix in canonical form, e.g. 198.51.100.0/24")],
    note: Annotated[str, typer.Option("--note", help="free text shown with the pin")] = "",
    as_json: JsonOption = False,
) -> None:
    """Pin a prefix: installed on every switch with a path for it, before requests and TopN."""
    answer = _call(ctx, "PUT", f"/v1/pins/{_segment(prefix, ':/')}", {"note": note})
    _done(as_json, answer, f"pinned {answer['prefix']}")


@pin_app.command("del")
def pin_del(ctx: typer.Context, prefix: Annotated[str, typer.Argument(help="pinned prefix")],
            as_json: JsonOption = False) -> None:
    """Unpin a prefix."""
    _call(ctx, "DELETE", f"/v1/pins/{_segment(prefix, ':/')}")
    _done(as_json, {"deleted": prefix}, f"unpinned {prefix}")


@pin_app.command("list")
def pin_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Pinned prefixes."""
    _show(_call(ctx, "GET", "/v1/pins"), as_json, ctl_format.pins_table)


@ctl_app.command("set")
def set_settings(
    ctx: typer.Context,
    switch: Annotated[str, typer.Argument(help="switch name")],
    assignments: Annotated[list[str], typer.Argument(
        help="KEY=VALUE, e.g. cap_ipv4=16000; VALUE default returns a key to the config file's value")],
    as_json: JsonOption = False,
) -> None:
    """Override a switch's settings (caps, TTLs, half-lives, margin, ...) until changed back."""
    try:
        patch = parse_assignments(assignments)
    except ValueError as exc:
        _fail(CtlError(ExitCode.USAGE, str(exc)))
    answer = _call(ctx, "PUT", f"/v1/config/switches/{_segment(switch, '')}", patch)
    _show(answer, as_json, ctl_format.switch_settings_table)


def parse_assignments(assignments: list[str]) -> dict[str, int | float | None]:
    """``["cap_ipv4=16000", "margin=default"]`` → the API's patch; ValueError naming the bad one."""
    from topfib.api.settings import SwitchSettingsPatch  # the API's list of tunable keys: one place

    known = set(SwitchSettingsPatch.model_fields)
    patch: dict[str, int | float | None] = {}
    for item in assignments:
        key, sep, text = item.partition("=")
        key = SETTING_ALIASES.get(key.strip(), key.strip())
        if not sep or key not in known:
            names = ", ".join(sorted(known | set(SETTING_ALIASES)))
            raise ValueError(f"{item!r}: want KEY=VALUE with KEY one of {names}")
        patch[key] = _setting_value(key, text.strip())
    return patch


def _setting_value(key: str, text: str) -> int | float | None:
    if text in CLEAR_VALUES:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{key}: {text!r} is not a number (or 'default')") from None
    if not math.isfinite(value):
        raise ValueError(f"{key}: {text!r} is not a finite number")
    return value


def _done(as_json: bool, answer: Any, message: str) -> None:
    if as_json:
        print(json.dumps(answer))
    else:
        Console().print(terminal_text(message), markup=False, highlight=False)
