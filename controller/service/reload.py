"""SIGHUP: re-read the config file and apply what can change while topfib runs.

The whole file is loaded and validated first (TLS files included); only when everything is valid
is anything applied, all at once and without awaiting in between, so no request or control-loop
iteration ever sees half of a reload. What can change at run time: the tokens, each switch's caps,
TTLs, quotas, selection tunables and override ceilings, ``api.top_max`` and the API's TLS files
(while TLS stays on). Every other key (listen addresses, a switch's neighbor or ASNs, the
store URL, ...) keeps its running value and is logged as needing a restart: changing those would
mean new sockets, a new ExaBGP or a new store, and a reload never drops the BGP session.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from topfib.api.metrics import TLS_RELOADS
from topfib.api.transport.tls import build_tls_context
from topfib.collector.common.metrics import REGISTRY
from topfib.controller.config import (
    CEILING_KEYS,
    ApiConfig,
    ConfigError,
    SwitchConfig,
    TopfibConfig,
    load_config,
)
from topfib.controller.state.settings import TUNABLE_KEYS

log = logging.getLogger(__name__)

CONFIG_RELOADS = REGISTRY.counter(
    "topfib_config_reloads_total",
    "Config file reloads on SIGHUP by result (ok, failed: the file was invalid and nothing changed)",
    ("result",),
)

RELOADABLE_SWITCH_KEYS = TUNABLE_KEYS | {f"{key}_max" for key in CEILING_KEYS}
RELOADABLE_API_KEYS = frozenset({"top_max"})  # read by each request (the others shape the app)
TLS_FILE_KEYS = frozenset({"tls_cert_file", "tls_key_file", "tls_client_ca_file"})


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """The config to run on (the file's reloadable values over the running ones) and the keys
    whose new value waits for a restart."""

    config: TopfibConfig
    needs_restart: list[str]


def _split(old: BaseModel, new: BaseModel, section: str, reloadable: frozenset[str],
           restart: list[str]) -> dict[str, object]:
    """The reloadable fields of ``new`` that differ from ``old``; the others that differ go to
    ``restart`` as dotted keys."""
    changed: dict[str, object] = {}
    for key in type(old).model_fields:
        value = getattr(new, key)
        if value == getattr(old, key):
            continue
        if key in reloadable:
            changed[key] = value
        else:
            restart.append(f"{section}.{key}")
    return changed


def plan_reload(running: TopfibConfig, new: TopfibConfig) -> ReloadPlan:
    """What a reload from ``new`` applies to ``running`` (both already validated).

    Merging stays valid: the only rules across keys that mix reloadable and restart-only ones
    are within a switch's reloadable keys (TTLs, ceilings), checked when ``new`` was loaded.
    """
    restart: list[str] = []
    api_reloadable = RELOADABLE_API_KEYS
    if running.api.tls_cert_file is not None and new.api.tls_cert_file is not None:
        api_reloadable = api_reloadable | TLS_FILE_KEYS  # other files; turning TLS on/off: restart
    api: ApiConfig = running.api.model_copy(update=_split(running.api, new.api, "api", api_reloadable,
                                                           restart))
    for section in ("collector", "store", "exabgp", "matrix", "special_use"):
        _split(getattr(running, section), getattr(new, section), section, frozenset(), restart)
    new_switches = {sw.name: sw for sw in new.switch}
    switches: list[SwitchConfig] = []
    for index, sw in enumerate(running.switch):
        fresh = new_switches.pop(sw.name, None)
        if fresh is None:
            restart.append(f"switch[{index}] ({sw.name}: removed)")
            switches.append(sw)
            continue
        changed = _split(sw, fresh, f"switch[{sw.name}]", RELOADABLE_SWITCH_KEYS, restart)
        switches.append(sw.model_copy(update=changed))
    restart.extend(f"switch ({name}: added)" for name in new_switches)
    merged = running.model_copy(update={"api": api, "switch": switches, "token": new.token})
    return ReloadPlan(merged, restart)


@dataclass(frozen=True, slots=True)
class Reload:
    """A validated reload, ready to apply: the plan and the TLS context new connections get."""

    plan: ReloadPlan
    tls: ssl.SSLContext | None


def prepare_reload(path: Path, running: TopfibConfig) -> Reload | None:
    """The reload the file at ``path`` asks for; None (logged, counted) when the file or its TLS
    files are not usable, in which case nothing may change."""
    try:
        new = load_config(path)
    except ConfigError as exc:
        _failed(path, exc)
        return None
    try:
        tls = build_tls_context(new.api)  # the file's TLS files must be usable, as check-config says
    except ConfigError as exc:
        TLS_RELOADS.inc(result="failed")
        _failed(path, exc)
        return None
    plan = plan_reload(running, new)
    # turning TLS on or off waits for a restart (plan_reload): a new context only while it stays on
    return Reload(plan, tls if running.api.tls_cert_file is not None else None)


def _failed(path: Path, exc: ConfigError) -> None:
    CONFIG_RELOADS.inc(result="failed")
    log.error("SIGHUP: config reload failed, still running on the previous config: %s: %s", path, exc)


def report_reload(path: Path, plan: ReloadPlan) -> None:
    """Count and log an applied reload."""
    CONFIG_RELOADS.inc(result="ok")
    if plan.needs_restart:
        log.warning("SIGHUP: %s: %s changed but needs a restart; running on the previous value(s)",
                    path, ", ".join(plan.needs_restart))
    log.info("SIGHUP: reloaded %s (%d token(s), %s)", path, len(plan.config.token),
             ", ".join(f"{sw.name} fib_cap_ipv4={sw.fib_cap_ipv4} fib_cap_ipv6={sw.fib_cap_ipv6}"
                       for sw in plan.config.switch))
