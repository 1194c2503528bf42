"""Render ExaBGP 5's configuration for one switch from ``exabgp/topfib.conf.template``.

One ExaBGP per switch, one BGP session per ExaBGP: the session both reads the switch's paths
(ADD-PATH receive, JSON) and carries topfib's announcements. Graceful restart is off unless
``switch[].graceful_restart_s`` asks for it, so the switch drops topfib's routes at once when topfib
or ExaBGP dies and falls back to its default.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import sys
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from string import Template

from topfib.collector.common.safe_files import ensure_private_dir, write_atomically
from topfib.controller.config import SwitchConfig

# Package data of topfib.exabgp, a namespace package (an __init__.py would turn the repository's
# exabgp/ folder into a package shadowing the real ExaBGP in a checkout). ExaBGP runs the bridge by
# file name, so the package must be installed as files (a wheel is; a zip import is not).
EXABGP_DIR = Path(str(files("topfib"))) / "exabgp"
TEMPLATE_PATH = EXABGP_DIR / "topfib.conf.template"
BRIDGE_PATH = EXABGP_DIR / "bridge.py"

DEFAULT_HOLD_TIME_S = 90
GTSM_SENDING_TTL = 255  # RFC 5082: a GTSM speaker sends with the highest TTL
# ExaBGP's tokeniser splits on whitespace and treats these as syntax: keep them out of paths.
_UNSAFE_TOKEN = re.compile(r"[\s;{}\[\]\"'#]")


class ExabgpConfigError(ValueError):
    """A switch that cannot be turned into an ExaBGP configuration; the message says why."""


@dataclass(frozen=True, slots=True)
class BridgeCommand:
    """How ExaBGP starts the bridge: interpreter, script, and the socket it connects to."""

    socket_path: Path
    python: Path = Path(sys.executable)
    script: Path = BRIDGE_PATH

    def argv(self) -> list[str]:
        return [str(self.python), str(self.script), str(self.socket_path)]


def process_name(switch: SwitchConfig) -> str:
    return f"topfib-bridge-{switch.name}"


def _router_id(switch: SwitchConfig) -> str:
    if switch.router_id is not None:
        return switch.router_id
    local = ipaddress.ip_address(switch.local_address)
    if local.version == 4:
        return str(local)
    raise ExabgpConfigError(f"switch {switch.name}: router_id is required when local_address is IPv6")


def _transport(switch: SwitchConfig) -> str:
    # Passive: the switch dials us on bgp_port. Active: we dial the switch on bgp_port.
    if switch.passive:
        return f"    passive;\n    listen {switch.bgp_port};"
    return f"    connect {switch.bgp_port};"


def _session_security(switch: SwitchConfig) -> str:
    """TCP-MD5 and GTSM statements for the neighbor block ("" when neither is set).

    The password goes in base64 (``md5-base64 true``): ExaBGP unescapes backslashes before it
    tokenises a line, so no quoting of the plain text is safe for every character, while the
    base64 alphabet needs none. GTSM: send with TTL 255 and have the kernel drop anything that
    arrives having crossed more than ``ttl_security`` hops (IP_MINTTL).
    """
    lines = []
    if switch.md5_password is not None:
        encoded = base64.b64encode(switch.md5_password.get_secret_value().encode("ascii")).decode("ascii")
        lines += [f'    md5-password "{encoded}";', "    md5-base64 true;"]
    if switch.ttl_security:
        lines += [f"    outgoing-ttl {GTSM_SENDING_TTL};",
                  f"    incoming-ttl {GTSM_SENDING_TTL + 1 - switch.ttl_security};"]
    return "\n".join(lines)


def _graceful_restart(switch: SwitchConfig) -> tuple[str, str]:
    """The capability statement and the neighbor's End-of-RIB statement for graceful restart.

    On, ExaBGP advertises the capability (with the forwarding-state bit for every family: 5.0
    has no way to leave it out) and closes the session without a NOTIFICATION when it stops, so
    the switch keeps our routes as stale. ``manual-eor``: ExaBGP must not send End-of-RIB on a new
    session by itself, as the switch would then flush the stale routes before topfib re-announced
    them; topfib sends it once it has programmed the session (SwitchController)."""
    if not switch.graceful_restart_s:
        return "graceful-restart disable;", ""
    return f"graceful-restart {switch.graceful_restart_s};", "    manual-eor true;"


def _safe_token(value: str, what: str) -> str:
    if not value or _UNSAFE_TOKEN.search(value):
        raise ExabgpConfigError(f"{what} {value!r} contains characters ExaBGP cannot parse")
    return value


def render_exabgp_config(
    switch: SwitchConfig,
    bridge: BridgeCommand,
    *,
    hold_time_s: int = DEFAULT_HOLD_TIME_S,
    template_text: str | None = None,
) -> str:
    """The ExaBGP configuration text for ``switch``, with ``bridge`` as its API process."""
    if hold_time_s != 0 and not 3 <= hold_time_s <= 65535:
        raise ExabgpConfigError(f"hold time {hold_time_s} must be 0 or 3..65535 s")
    command = " ".join(_safe_token(arg, "bridge argument") for arg in bridge.argv())
    graceful_restart, end_of_rib = _graceful_restart(switch)
    text = template_text if template_text is not None else TEMPLATE_PATH.read_text()
    return Template(text).substitute(
        switch_name=switch.name,
        process_name=process_name(switch),
        bridge_command=command,
        neighbor=switch.neighbor,
        router_id=_router_id(switch),
        local_address=switch.local_address,
        local_as=switch.local_as,
        peer_as=switch.peer_as,
        hold_time=hold_time_s,
        transport=_transport(switch),
        session_security=_session_security(switch),
        graceful_restart=graceful_restart,
        end_of_rib=end_of_rib,
    )


def write_exabgp_config(
    switch: SwitchConfig, bridge: BridgeCommand, path: Path, *, hold_time_s: int = DEFAULT_HOLD_TIME_S
) -> Path:
    """Render and write atomically (ExaBGP may be reading the old file while we replace it), mode
    0600 in a private directory: the file may hold the switch's BGP password."""
    text = render_exabgp_config(switch, bridge, hold_time_s=hold_time_s)
    ensure_private_dir(path.parent)
    write_atomically(path, text.encode("utf-8"))
    return path
