"""``topfib demo``: a self-contained lab on one machine, with a live view and the dashboard.

With root (and BIRD 2 installed) the switch is BIRD in a network namespace that installs what
topfib announces into a real kernel FIB (:mod:`topfib.controller.demo.netns_lab`); its peer routes are the
head of the corpus's full table (:mod:`topfib.controller.demo.table`). topfib is the real service
(:class:`topfib.controller.service.run.Service`: collector, control loop, supervised ExaBGP in the ``ctl``
namespace, API with the dashboard) with the in-memory store. An in-process sFlow agent sends Zipf
traffic over the whole table at a switch's rate (:mod:`topfib.controller.demo.traffic`), and a few
access-point requests go through the HTTP API once routes flow.

Without root (or BIRD), or with ``TOPFIB_DEMO_SWITCH=exabgp``, the switch stand-in is a second
ExaBGP on 127.0.0.2 that records what it receives (:mod:`topfib.controller.demo.loopback`).

Ctrl-C, SIGTERM or ``--duration`` stop everything: the service (ExaBGP and its bridge by process
group), BIRD by PID, whatever is left in the namespaces this run created, then the namespaces.
With ``--duration`` the exit status says whether routes reached the switch (0) or not (1).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.live import Live

from topfib.controller.config import TopfibConfig
from topfib.controller.demo.snapshot import SWITCH_NAME, Snapshotter, Totals, summary
from topfib.controller.demo.table import DemoTable, load_demo_table
from topfib.controller.demo.traffic import SflowGenerator
from topfib.controller.demo.view import plain_line, render
from topfib.controller.service.log_format import TEXT_FORMAT
from topfib.controller.service.run import Service

log = logging.getLogger(__name__)

CAP_V4, CAP_V6 = 1000, 200
# Peer routes BIRD sends topfib (the head of the Zipf ranking, ~1.3 paths each, ~32k paths): measured
# on a 2-vCPU machine at load 10, the session is up 1 s after start and the whole table is in topfib's
# RIB 6–12 s later (ExaBGP parses ~3–5k paths/s there); 50k prefixes would take 20–30 s before the
# first routes are programmed, too long for a demo (and its test) that should show results at once.
PEER_ROUTES_V4, PEER_ROUTES_V6 = 20_000, 4_000
ZIPF_ALPHA = 1.1  # measured edge traffic: α between ~1.0 and ~1.4
SAMPLES_PER_S = 3000.0  # a busy switch's sFlow agent (700–7,500 samples/s)
SEED = 1
REQUEST_TTL_S = 600.0
PREFERRED_API_PORT = 8080
SUMMARY_TAG = "topfib demo summary:"
SWITCH_ENV = "TOPFIB_DEMO_SWITCH"  # "exabgp": the loopback stand-in even as root

FibCounts = Callable[[], "dict[int, int] | None"]  # family → routes the switch holds


def free_port(kind: int, preferred: int = 0) -> int:
    """``preferred`` when it is free on 127.0.0.1, else a port the kernel picks."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise OSError("no free port on 127.0.0.1")


@dataclass
class DemoTokens:
    viewer: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    ap: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    operator: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def config_entries(self) -> list[dict[str, str]]:
        return [
            {"name": f"demo-{role}", "role": role, "sha256": hashlib.sha256(token.encode()).hexdigest()}
            for role, token in (("viewer", self.viewer), ("ap", self.ap), ("operator", self.operator))
        ]


def demo_config(
    switch: dict[str, object], tokens: DemoTokens, api_port: int, sflow_port: int
) -> TopfibConfig:
    return TopfibConfig.model_validate({
        "api": {"listen": f"127.0.0.1:{api_port}"},
        "collector": {"sflow_listen": [f"127.0.0.1:{sflow_port}"], "receive_buffer_bytes": 4 * 1024 * 1024},
        "store": {"url": "memory://"},
        # the demo's sFlow agent sends from the host's loopback, whatever agent address it writes
        "switch": [{"name": SWITCH_NAME, "fib_cap_ipv4": CAP_V4, "fib_cap_ipv6": CAP_V6,
                    "flow_sources": ["127.0.0.1"], **switch}],
        "token": tokens.config_entries(),
    })


def _host_in(prefix: str) -> str:
    network = ipaddress.ip_network(prefix)
    return str(network.network_address + 1) if network.num_addresses > 1 else str(network.network_address)


def request_targets(table: DemoTable, peers_v4: int, peers_v6: int) -> list[str]:
    """Addresses an access point asks for: cold peer prefixes (only a request installs them) in
    both families, and one whose prefix only transit reaches (answered ``no-route``)."""
    v4, v6 = table.v4.prefixes, table.v6.prefixes
    targets = [_host_in(v4[peers_v4 - 1]), _host_in(v4[peers_v4 - 2]), _host_in(v6[peers_v6 - 1])]
    if len(v4) > peers_v4:
        targets.append(_host_in(v4[-1]))
    return targets


def post_requests(api: str, token: str, ips: list[str]) -> dict[str, str]:
    """POST /v1/requests as an access point; ip → status the API answered (or the error)."""
    body = json.dumps({"ips": ips, "ttl_s": REQUEST_TTL_S}).encode()
    request = urllib.request.Request(f"http://{api}/v1/requests", data=body, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10.0) as response:
            answer = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return {ip: f"error: {exc}" for ip in ips}
    return {str(r["ip"]): str(r["status"]) for r in answer.get("results", [])}


def _install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def _configure_logging(path: Path) -> None:
    """Service logs go to a file: the terminal belongs to the live view."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


async def _watch(
    console: Console,
    snapshotter: Snapshotter,
    stop: asyncio.Event,
    deadline: float | None,
    fib_counts: FibCounts,
    cap_guard: Callable[[], bool],
    request_ips: list[str],
    ap_token: str,
) -> Totals:
    """Refresh the view each second until ``stop`` or the deadline; send the AP requests once the
    first routes are installed."""
    totals = Totals()
    live_view = console.is_terminal
    last_plain = 0.0
    requested = False
    live = Live(console=console, refresh_per_second=4, transient=False) if live_view else None
    with live if live is not None else contextlib.nullcontext():
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            switch_fib = await asyncio.to_thread(fib_counts)
            fired = await asyncio.to_thread(cap_guard)
            if not requested and snapshotter.ctl.installed:
                requested = True
                api = snapshotter.service.config.api.listen
                snapshotter.requested = await asyncio.to_thread(post_requests, api, ap_token, request_ips)
            snapshot = snapshotter.take(switch_fib, fired)
            totals.note(snapshot)
            if live is not None:
                live.update(render(snapshot))
            elif snapshot.elapsed_s - last_plain >= 5.0 or last_plain == 0.0:
                last_plain = snapshot.elapsed_s
                print(plain_line(snapshot), flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    return totals


async def _namespace_demo(duration: float, console: Console, workdir: Path, stop: asyncio.Event) -> int:
    from topfib.controller.demo.netns_lab import CTL_V4, SW_V4, SWITCH_AS, NamespaceSwitch

    console.print("loading the routing table …")
    table = await asyncio.to_thread(load_demo_table, ZIPF_ALPHA, SEED)
    peers_v4 = min(PEER_ROUTES_V4, len(table.v4.prefixes) // 2)
    peers_v6 = min(PEER_ROUTES_V6, len(table.v6.prefixes) // 2)
    console.print(f"table: {table.source}: {len(table.v4.prefixes):,} IPv4 + {len(table.v6.prefixes):,} IPv6 "
                  f"prefixes; the switch's peers carry the {peers_v4:,} + {peers_v6:,} most popular, "
                  "transit (the default route) the rest")
    if stop.is_set():
        return 0
    tag = f"tfdemo{os.getpid()}"
    switch = NamespaceSwitch(tag, workdir / "switch", import_limit_v4=CAP_V4, import_limit_v6=CAP_V6)
    (workdir / "switch").mkdir()
    try:
        await asyncio.to_thread(switch.build, table.v4.peer_routes(peers_v4), table.v6.peer_routes(peers_v6))
        console.print(f"switch: BIRD 2 in namespace {switch.sw} (topfib's ExaBGP in {switch.ctl})")
        tokens = DemoTokens()
        config = demo_config(
            {"neighbor": SW_V4, "local_address": CTL_V4, "local_as": SWITCH_AS, "peer_as": SWITCH_AS,
             "sflow_agents": [SW_V4]},
            tokens, free_port(socket.SOCK_STREAM, PREFERRED_API_PORT), free_port(socket.SOCK_DGRAM),
        )
        return await run_with_view(
            config, console, workdir, stop, duration, table, peers_v4, peers_v6, tokens, agent=SW_V4,
            switch_label=f"BIRD 2 in netns {switch.sw} → kernel FIB",
            fib_counts=lambda: {4: switch.fib_routes(4), 6: switch.fib_routes(6)},
            cap_guard=switch.import_limit_fired, cap_guard_label="BIRD's import limit (the cap's safety net)",
            extra={"namespaces": [switch.ctl, switch.sw]}, netns=switch.ctl,
        )
    finally:
        await asyncio.to_thread(switch.close)


async def run_with_view(
    config: TopfibConfig,
    console: Console,
    workdir: Path,
    stop: asyncio.Event,
    duration: float,
    table: DemoTable,
    peers_v4: int,
    peers_v6: int,
    tokens: DemoTokens,
    *,
    agent: str,
    switch_label: str,
    fib_counts: FibCounts,
    cap_guard: Callable[[], bool],
    cap_guard_label: str,
    extra: dict[str, object],
    netns: str | None = None,
) -> int:
    service = Service(config, runtime_dir=workdir / "topfib", netns=netns)
    sflow_host, sflow_port = config.collector.sflow_listen[0].rsplit(":", 1)
    generator = SflowGenerator(table, agent, (sflow_host, int(sflow_port)), SAMPLES_PER_S, seed=SEED)
    api = config.api.listen
    dashboard = f"http://{api}/#token={tokens.viewer}"
    try:
        await service.start()  # inside: a start that fails half-way is stopped like a full one
        generator.start()
        console.print(f"dashboard: {dashboard}")
        console.print(f"viewer token: {tokens.viewer}   access-point token: {tokens.ap}   "
                      f"operator token: {tokens.operator}")
        console.print(f"API: http://{api}/docs   metrics: http://{api}/metrics   logs: {workdir}/demo.log")
        snapshotter = Snapshotter(service, switch_label, cap_guard_label, dashboard, duration)
        deadline = time.monotonic() + duration if duration > 0 else None
        totals = await _watch(console, snapshotter, stop, deadline, fib_counts, cap_guard,
                              request_targets(table, peers_v4, peers_v6), tokens.ap)
    finally:
        generator.stop()
        ctl = service.controllers[SWITCH_NAME]
        exabgp_pid = ctl.runner.pid
        await service.stop()
    report = summary(totals, {"exabgp_pid": exabgp_pid, "workdir": str(workdir), **extra,
                              "samples_sent": generator.sent_samples})
    if totals.last is not None:
        console.print(plain_line(totals.last))
    print(f"{SUMMARY_TAG} {json.dumps(report, sort_keys=True)}", flush=True)
    reached_switch = sum(totals.max_switch_fib.values()) > 0
    return 0 if reached_switch or duration <= 0 else 1


async def _demo(duration: float, loopback: bool) -> int:
    console = Console(soft_wrap=True)
    workdir = Path(tempfile.mkdtemp(prefix="topfib-demo-"))
    stop = asyncio.Event()
    _install_stop_signals(stop)
    _configure_logging(workdir / "demo.log")
    try:
        if loopback:
            from topfib.controller.demo.loopback import loopback_demo

            return await loopback_demo(duration, console, workdir, stop)
        return await _namespace_demo(duration, console, workdir, stop)
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as exc:
        log.exception("demo failed")
        console.print(f"[red]demo failed:[/red] {exc}")
        return 1
    finally:
        for child in ("switch", "topfib"):
            for log_file in (workdir / child).glob("*.log"):  # ExaBGP's and BIRD's logs stay for a look
                with contextlib.suppress(OSError):
                    log_file.replace(workdir / f"{child}-{log_file.name}")
            shutil.rmtree(workdir / child, ignore_errors=True)
        console.print("stopped: every process and namespace this demo started is gone "
                      f"(logs: {workdir}/)")


def run_demo(duration: float) -> int:
    """CLI body of ``topfib demo``: 0 when it ran (with ``--duration``: and routes reached the switch)."""
    from topfib.controller.demo.netns_lab import unavailable_reason
    from topfib.controller.exabgp.runner import exabgp_missing_reason

    if duration < 0:
        print("--duration must be ≥ 0", file=sys.stderr)
        return 2
    missing = exabgp_missing_reason()
    if missing is not None:  # topfib's own session and the loopback stand-in both need it
        print(missing, file=sys.stderr)
        return 2
    reason = unavailable_reason()
    if os.environ.get(SWITCH_ENV) == "exabgp":
        reason = f"{SWITCH_ENV}=exabgp"
    if reason is not None:
        print(f"no namespace lab ({reason}): the switch stand-in is a second ExaBGP on 127.0.0.2",
              file=sys.stderr)
    try:
        return asyncio.run(_demo(duration, loopback=reason is not None))
    except KeyboardInterrupt:
        return 130
