#!/usr/bin/env python3
"""Record the JSON lines a real ExaBGP 5 hands its process while a real BIRD 2 sends it routes.

A recording tool for the parser's golden tests, not part of topfib's runtime. Run as root from
the repository root::

    .venv/bin/python scripts/record_exabgp_json.py tests/golden/exabgp/bird2-addpath.jsonl

It creates two network namespaces of its own, ``tfrec-ctl`` (ExaBGP) and ``tfrec-sw`` (BIRD),
joined by a veth pair, and deletes them afterwards, also on failure or Ctrl-C. BIRD sends, with
ADD-PATH tx, IPv4 routes over an IPv4 iBGP session and IPv6 routes over an IPv6 iBGP session;
two static protocols give several paths per prefix, and the export filter sets local-pref, MED,
origin, AS path, communities and large communities per path. The script then withdraws paths
(``birdc disable`` of one static protocol per family), shuts the IPv4 session down, and stops
ExaBGP. Every line the process receives (End-of-RIB included) is written to the output file.

With ``--sink FILE`` the script is the ExaBGP process itself: it appends each stdin line to FILE
and never stops reading (a process that stops draining stdin stalls ExaBGP).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

NS_CTL = "tfrec-ctl"
NS_SW = "tfrec-sw"
VETH_CTL = "tfrec-c"
VETH_SW = "tfrec-s"
CTL4, SW4 = "10.77.0.1", "10.77.0.2"
CTL6, SW6 = "fd77::1", "fd77::2"
ASN = 65000
REPO = Path(__file__).resolve().parent.parent

BIRD_CONF = """\
router id {sw4};
log "{workdir}/bird.log" all;
protocol device {{ }}

# Two static protocols hold the same prefixes with different gateways: two paths per prefix.
protocol static s4a {{
    ipv4;
    route 198.51.100.0/24 via 10.77.0.10;
    route 192.0.2.0/24 via 10.77.0.10;
    route 203.0.113.0/25 via 10.77.0.10;
    route 10.99.0.0/16 via 10.77.0.10;
}}
protocol static s4b {{
    ipv4;
    route 198.51.100.0/24 via 10.77.0.11;
    route 192.0.2.0/24 via 10.77.0.11;
    route 203.0.113.128/25 via 10.77.0.11;
    route 10.99.1.0/24 via 10.77.0.11;
}}
protocol static s6a {{
    ipv6;
    route 2001:db8:100::/48 via fd77::10;
    route 2001:db8:200::/48 via fd77::10;
}}
protocol static s6b {{
    ipv6;
    route 2001:db8:100::/48 via fd77::11;
    route 2001:db8:300::/64 via fd77::11;
}}

filter to_controller {{
    if proto = "s4a" || proto = "s6a" then {{
        bgp_local_pref = 200;
        bgp_med = 10;
        bgp_path.prepend(64501);
        bgp_path.prepend(64500);
        bgp_community.add((65000, 100));
        bgp_community.add((65000, 101));
        bgp_large_community.add((65000, 1, 2));
    }}
    if proto = "s4b" || proto = "s6b" then {{
        bgp_local_pref = 100;
        bgp_med = 20;
        bgp_origin = ORIGIN_INCOMPLETE;
        bgp_path.prepend(64502);
        bgp_community.add((65000, 200));
        bgp_large_community.add((65000, 3, 4294967295));
    }}
    accept;
}}

protocol bgp ctl4 {{
    local {sw4} as {asn};
    neighbor {ctl4} as {asn};
    direct;
    ipv4 {{ import none; export filter to_controller; add paths tx; gateway direct; }};
}}
protocol bgp ctl6 {{
    local {sw6} as {asn};
    neighbor {ctl6} as {asn};
    direct;
    ipv6 {{ import none; export filter to_controller; add paths tx; gateway direct; }};
}}
"""

EXABGP_CONF = """\
process recorder {{
    run {python} {script} --sink {sink};
    encoder json;
}}

template {{
    neighbor switch {{
        router-id {ctl4};
        local-as {asn};
        peer-as {asn};
        hold-time 30;
        capability {{
            add-path receive;
            graceful-restart disable;
        }}
        api recorder {{
            processes [ recorder ];
            neighbor-changes;
            receive {{
                parsed;
                update;
                notification;
            }}
        }}
    }}
}}

neighbor {sw4} {{
    inherit switch;
    local-address {ctl4};
    family {{ ipv4 unicast; }}
}}

neighbor {sw6} {{
    inherit switch;
    local-address {ctl6};
    family {{ ipv6 unicast; }}
}}
"""


def sink(path: Path) -> int:
    """Be ExaBGP's process: copy every stdin line to ``path``, flushing each."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with path.open("a", encoding="utf-8") as out:
        for line in sys.stdin:
            out.write(line if line.endswith("\n") else line + "\n")
            out.flush()
    return 0


def run(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=check, capture_output=True, text=True, timeout=30)


def in_ns(namespace: str, *command: str) -> list[str]:
    return ["ip", "netns", "exec", namespace, *command]


def delete_namespaces() -> None:
    """Delete our namespaces, after killing whatever still runs inside them (ours alone)."""
    existing = run("ip", "netns", "list", check=False).stdout
    for namespace in (NS_CTL, NS_SW):
        if namespace not in existing.split():
            continue
        pids = run("ip", "netns", "pids", namespace, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        run("ip", "netns", "delete", namespace, check=False)


@contextlib.contextmanager
def namespaces() -> Iterator[None]:
    delete_namespaces()  # a previous run killed hard may have left ours behind
    try:
        run("ip", "netns", "add", NS_CTL)
        run("ip", "netns", "add", NS_SW)
        run("ip", "link", "add", VETH_CTL, "netns", NS_CTL, "type", "veth", "peer", VETH_SW, "netns", NS_SW)
        for namespace, device, v4, v6 in ((NS_CTL, VETH_CTL, CTL4, CTL6), (NS_SW, VETH_SW, SW4, SW6)):
            run(*in_ns(namespace, "ip", "link", "set", "lo", "up"))
            run(*in_ns(namespace, "ip", "addr", "add", f"{v4}/24", "dev", device))
            run(*in_ns(namespace, "ip", "addr", "add", f"{v6}/64", "dev", device, "nodad"))
            run(*in_ns(namespace, "ip", "link", "set", device, "up"))
        yield
    finally:
        delete_namespaces()


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def wait_for(output: Path, what: str, predicate: Callable[[list[dict[str, object]]], bool],
             timeout_s: float = 40.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        messages = []
        if output.exists():
            for line in output.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(ValueError):
                    messages.append(json.loads(line))
        if predicate(messages):
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


def count(messages: list[dict[str, object]], needle: str) -> int:
    return sum(needle in json.dumps(m) for m in messages)


def record(output: Path) -> int:
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tfrec-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)
        raw = workdir / "received.jsonl"
        (workdir / "bird.conf").write_text(BIRD_CONF.format(
            sw4=SW4, sw6=SW6, ctl4=CTL4, ctl6=CTL6, asn=ASN, workdir=workdir))
        (workdir / "exabgp.conf").write_text(EXABGP_CONF.format(
            python=REPO / ".venv" / "bin" / "python", script=Path(__file__).resolve(), sink=raw,
            sw4=SW4, sw6=SW6, ctl4=CTL4, ctl6=CTL6, asn=ASN))
        sock = workdir / "bird.ctl"
        env = dict(os.environ, exabgp_daemon_user="root", exabgp_daemon_daemonize="false",
                   exabgp_log_destination=str(workdir / "exabgp.log"), exabgp_reactor_speed="0.1")
        bird: subprocess.Popen[bytes] | None = None
        exabgp: subprocess.Popen[bytes] | None = None
        with namespaces():
            try:
                bird = subprocess.Popen(in_ns(NS_SW, "bird", "-f", "-c", str(workdir / "bird.conf"),
                                              "-s", str(sock), "-P", str(workdir / "bird.pid")))
                exabgp_bin = str(REPO / ".venv" / "bin" / "exabgp")
                exabgp = subprocess.Popen(
                    in_ns(NS_CTL, exabgp_bin, "server", str(workdir / "exabgp.conf")), env=env,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                wait_for(raw, "both sessions up and End-of-RIB for both families",
                         lambda m: count(m, '"up"') >= 2 and count(m, '"eor"') >= 2)
                time.sleep(1.0)
                birdc = ["birdc", "-s", str(sock)]
                # Withdraw one path of several prefixes per family (the prefix stays via s?a),
                # and the only path of 203.0.113.128/25 and 2001:db8:300::/64.
                run(*birdc, "disable", "s4b")
                run(*birdc, "disable", "s6b")
                wait_for(raw, "withdraws", lambda m: count(m, '"withdraw"') >= 2)
                time.sleep(1.0)
                run(*birdc, "disable", "ctl4")  # session down: NOTIFICATION (cease) + state down
                wait_for(raw, "session down", lambda m: count(m, '"down"') >= 1)
                time.sleep(1.0)
                stop(exabgp)  # ExaBGP's shutdown: the IPv6 session goes down too
                time.sleep(0.5)
            finally:
                stop(exabgp)
                stop(bird)
        if not raw.exists():
            print("nothing recorded", file=sys.stderr)
            return 1
        lines = raw.read_text(encoding="utf-8").splitlines()
        output.write_text("".join(line + "\n" for line in lines if line.strip()), encoding="utf-8")
        print(f"recorded {len(lines)} lines to {output}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("output", type=Path, nargs="?", help="file to write the recorded lines to")
    parser.add_argument("--sink", type=Path, help="act as the ExaBGP process writing to this file")
    args = parser.parse_args()
    if args.sink is not None:
        return sink(args.sink)
    if args.output is None:
        parser.error("output file required")
    return record(args.output)


if __name__ == "__main__":
    sys.exit(main())
