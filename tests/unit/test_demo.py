"""The demo's pure parts: table, peer routes, BIRD config, sFlow agent, view, stand-in recorder.

The whole demo runs end to end in tests/integration/test_demo.py.
"""

from __future__ import annotations

import gzip
import hashlib
import ipaddress
import json
import shutil
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

from topfib.collector.sflow.decoder import decode_datagram
from topfib.controller.demo import table as demo_table
from topfib.controller.demo.demo import (
    CAP_V4,
    CAP_V6,
    DemoTokens,
    demo_config,
    post_requests,
    request_targets,
)
from topfib.controller.demo.loopback import COMMAND_CHUNK, announce_commands, standin_config
from topfib.controller.demo.netns_lab import (
    PEER_NEXT_HOPS,
    PeerRoute,
    render_bird_config,
    render_static_protocol,
)
from topfib.controller.demo.standin import Recorder
from topfib.controller.demo.table import DemoTable, FamilyTable, load_demo_table, read_pfx2as
from topfib.controller.demo.traffic import SAMPLES_PER_DATAGRAM, SflowGenerator
from topfib.controller.demo.view import DemoSnapshot, RequestLine, TopLine, plain_line, render
from topfib.controller.service.run import Service

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden" / "exabgp" / "bird2-addpath.jsonl"


@pytest.fixture(scope="module")
def bundled() -> DemoTable:
    """The bundled extract, whatever the machine has (the corpus would take seconds to load)."""
    saved = demo_table.corpus_dir
    demo_table.corpus_dir = lambda: None
    try:
        return load_demo_table(alpha=1.1, seed=1)
    finally:
        demo_table.corpus_dir = saved


# --- the table -----------------------------------------------------------------------------------


def test_read_pfx2as_takes_the_first_origin_and_skips_malformed_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.pfx2as.gz"
    path.write_bytes(gzip.compress(b"1.0.0.0\t24\t13335\n2.0.0.0\t16\t64500_64501\n3.0.0.0\t8\t65000,65001\n"
                                   b"garbage\n4.0.0.0\tx\t1\n5.0.0.0\t24\tAS5\n2001:db8::\t32\t6939\n"))
    assert list(read_pfx2as(path)) == [("1.0.0.0/24", 13335), ("2.0.0.0/16", 64500), ("3.0.0.0/8", 65000),
                                       ("2001:db8::/32", 6939)]


def test_corpus_location_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(demo_table.CORPUS_ENV, str(tmp_path))
    assert demo_table.corpus_dir() is None  # set but without the table: the bundled extract
    (tmp_path / "bgp").mkdir()
    (tmp_path / demo_table.CORPUS_V4).write_bytes(gzip.compress(b"1.0.0.0\t24\t1\n"))
    assert demo_table.corpus_dir() == tmp_path


def test_the_bundled_extract_has_both_families(bundled: DemoTable) -> None:
    assert "bundled" in bundled.source
    assert len(bundled.v4.prefixes) == 18000 and len(bundled.v6.prefixes) == 2000


def test_family_table_is_in_rank_order_with_falling_shares() -> None:
    rows = [(f"10.{i}.0.0/16", 64500 + i) for i in range(100)]
    table = FamilyTable.build(4, rows, alpha=1.0, seed=3)
    assert sorted(table.prefixes) == sorted(p for p, _ in rows)
    assert dict(zip(table.prefixes, table.origins, strict=True)) == dict(rows)
    shares = table.traffic.share()
    assert all(shares[i] > shares[i + 1] for i in range(len(shares) - 1))
    assert shares[0] == pytest.approx(1.0 / sum(1.0 / r for r in range(1, 101)))


def test_peer_routes_are_the_head_with_one_or_two_valid_paths(bundled: DemoTable) -> None:
    for family_table in (bundled.v4, bundled.v6):
        routes = family_table.peer_routes(500)
        assert [prefix for prefix, _ in routes] == [str(ipaddress.ip_network(p))
                                                    for p in family_table.prefixes[:500]]
        peers = len(PEER_NEXT_HOPS[family_table.family])
        assert all(1 <= len(paths) <= 2 and len(set(paths)) == len(paths) for _, paths in routes)
        assert all(0 <= peer < peers for _, paths in routes for peer in paths)
        two = sum(len(paths) == 2 for _, paths in routes)
        assert 0.15 < two / len(routes) < 0.5  # a third of origins have a second peer


def test_peer_routes_skip_prefixes_with_host_bits() -> None:
    table = FamilyTable.build(4, [("10.0.0.1/24", 1), ("10.1.0.0/24", 2)], alpha=1.0, seed=1)
    assert [prefix for prefix, _ in table.peer_routes(2)] == ["10.1.0.0/24"]


# --- the BIRD switch's config ----------------------------------------------------------------------


def test_static_protocol_holds_the_routes_of_its_peer() -> None:
    routes: list[PeerRoute] = [("10.0.0.0/24", (0,)), ("10.1.0.0/24", (1, 2)), ("10.2.0.0/24", (1,))]
    text = render_static_protocol(4, 1, routes)
    assert "protocol static peer4_1 {" in text and "preference 50;" in text
    assert f"route 10.1.0.0/24 via {PEER_NEXT_HOPS[4][1]};" in text
    assert "10.0.0.0/24" not in text and text.count("route ") == 2


def test_bird_parses_the_switch_config_with_per_family_limits(tmp_path: Path, bundled: DemoTable) -> None:
    if shutil.which("bird") is None:
        pytest.skip("bird not installed")
    for family, table in ((4, bundled.v4), (6, bundled.v6)):
        for peer in range(len(PEER_NEXT_HOPS[family])):
            (tmp_path / f"peer{family}_{peer}.conf").write_text(
                render_static_protocol(family, peer, table.peer_routes(200)))
    text = render_bird_config(tmp_path, CAP_V4, CAP_V6)
    assert f"import limit {CAP_V4} action block" in text and f"import limit {CAP_V6} action block" in text
    assert text.count("export where source = RTS_BGP") == 2, "only topfib's routes reach the kernel FIB"
    (tmp_path / "bird.conf").write_text(text)
    result = subprocess.run(["bird", "-p", "-c", str(tmp_path / "bird.conf")], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr


# --- the sFlow agent -------------------------------------------------------------------------------


def _in_table(table: DemoTable) -> dict[int, set[tuple[int, int]]]:
    networks: dict[int, set[tuple[int, int]]] = {4: set(), 6: set()}
    for family_table in (table.v4, table.v6):
        for prefix in family_table.prefixes:
            network = ipaddress.ip_network(prefix)
            networks[network.version].add((int(network.network_address), network.prefixlen))
    return networks


def test_generated_datagrams_decode_to_hosts_inside_the_tables_prefixes(bundled: DemoTable) -> None:
    generator = SflowGenerator(bundled, "10.99.0.2", ("127.0.0.1", 9), v6_share=0.2, seed=5)
    datagrams = generator.datagrams(7000)
    networks = _in_table(bundled)
    v6 = 0
    sequences = []
    for payload in datagrams:
        datagram = decode_datagram(payload)
        assert datagram.header.agent == "10.99.0.2"
        assert 1 <= len(datagram.flow_samples) <= SAMPLES_PER_DATAGRAM
        for sample in datagram.flow_samples:
            sequences.append(sample.sequence)
            assert sample.sampling_rate == 4096
            assert sample.dst is not None
            address = ipaddress.ip_address(sample.dst)
            bits, value = address.max_prefixlen, int(address)
            covering = {(value >> (bits - length) << (bits - length), length) for length in range(bits + 1)}
            assert covering & networks[address.version], f"{address} is in no prefix of the table"
            v6 += address.version == 6
    assert sequences == list(range(1, len(sequences) + 1))
    assert len(sequences) == 7000 and 0.15 < v6 / 7000 < 0.25


def test_generated_traffic_follows_the_zipf_ranking(bundled: DemoTable) -> None:
    generator = SflowGenerator(bundled, "10.99.0.2", ("127.0.0.1", 9), v6_share=0.0, seed=7)
    head = {int(ipaddress.ip_network(p).network_address): p for p in bundled.v4.prefixes[:3]}
    hits: Counter[str] = Counter()
    for payload in generator.datagrams(20000):
        for sample in decode_datagram(payload).flow_samples:
            assert sample.dst is not None
            address = int(ipaddress.IPv4Address(sample.dst))
            for network, prefix in head.items():
                length = ipaddress.ip_network(prefix).prefixlen
                if address >> (32 - length) << (32 - length) == network:
                    hits[prefix] += 1
    expected = bundled.v4.traffic.share()[:3] * 20000
    for rank, prefix in enumerate(bundled.v4.prefixes[:3]):
        assert hits[prefix] == pytest.approx(expected[rank], rel=0.25), (rank, prefix)


def test_the_agent_sends_at_its_rate(bundled: DemoTable) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(0.2)
        generator = SflowGenerator(bundled, "10.99.0.2", sink.getsockname(), samples_per_s=2000.0)
        generator.start()
        received = 0
        started = time.monotonic()
        try:
            while time.monotonic() - started < 1.5:
                try:
                    received += len(decode_datagram(sink.recv(65535)).flow_samples)
                except TimeoutError:
                    continue
        finally:
            generator.stop()
    assert 2000 < received < 4000, received
    assert generator.sent_samples >= received


# --- requests, config ------------------------------------------------------------------------------


def test_request_targets_are_cold_peer_prefixes_and_one_transit_destination(bundled: DemoTable) -> None:
    targets = request_targets(bundled, peers_v4=1000, peers_v6=200)
    v4, v6 = bundled.v4.prefixes, bundled.v6.prefixes
    expected = [v4[999], v4[998], v6[199], v4[-1]]
    assert len(targets) == 4
    for ip, prefix in zip(targets, expected, strict=True):
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(prefix)


def test_demo_config_is_valid_and_holds_the_tokens_hashes() -> None:
    tokens = DemoTokens()
    config = demo_config({"neighbor": "10.99.0.2", "local_address": "10.99.0.1", "local_as": 65000,
                          "peer_as": 65000, "sflow_agents": ["10.99.0.2"]}, tokens, 18080, 16343)
    assert config.store.url == "memory://"
    (switch,) = config.switch
    assert (switch.fib_cap_ipv4, switch.fib_cap_ipv6) == (CAP_V4, CAP_V6)
    hashes = {token.role: token.sha256 for token in config.token}
    assert hashes["viewer"] == hashlib.sha256(tokens.viewer.encode()).hexdigest()
    assert len({tokens.viewer, tokens.ap, tokens.operator}) == 3


def test_the_demo_agents_datagrams_pass_the_services_flow_gate(bundled: DemoTable, tmp_path: Path) -> None:
    """The generator sends from the host's loopback whatever agent address it writes."""
    config = demo_config({"neighbor": "10.99.0.2", "local_address": "10.99.0.1", "local_as": 65000,
                          "peer_as": 65000, "sflow_agents": ["10.99.0.2"]}, DemoTokens(), 18080, 16343)
    gate = Service(config, runtime_dir=tmp_path).collector.flow_gate
    generator = SflowGenerator(bundled, "10.99.0.2", ("127.0.0.1", 9), seed=5)
    datagrams = [(datagram, "127.0.0.1") for datagram in generator.datagrams(70)]
    assert gate is not None and gate.admit(datagrams) == datagrams


def test_post_requests_reports_an_unreachable_api_per_address() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once closed
    answers = post_requests(f"127.0.0.1:{port}", "token", ["192.0.2.1", "2001:db8::1"])
    assert set(answers) == {"192.0.2.1", "2001:db8::1"}
    assert all(status.startswith("error:") for status in answers.values())


# --- the view --------------------------------------------------------------------------------------


def _snapshot(**overrides: object) -> DemoSnapshot:
    fields: dict[str, object] = {
        "elapsed_s": 12.0, "duration_s": 40.0, "switch_label": "BIRD 2 in netns x → kernel FIB",
        "session_state": "up", "rib_prefixes": {4: 20000, 6: 4000},
        "occupancy": {"ipv4": (1000, 1000), "ipv6": (150, 200)}, "switch_fib": {4: 1000, 6: 150},
        "coverage": 0.7312, "oracle_coverage": 0.8604, "routed_share": 0.8, "churn_per_hour": 1150.0,
        "requests": [RequestLine("192.0.2.1", "installed", "192.0.2.0/24"),
                     RequestLine("198.51.100.1", "no-route", None)],
        "samples_per_s": 3000.0, "datagrams_per_s": 430.0, "samples_total": 36000, "malformed": 0,
        "top": [TopLine("192.0.2.0/24", 1.2e9, 500, True)], "dashboard_url": "http://127.0.0.1:8080/#token=t",
    }
    fields.update(overrides)
    return DemoSnapshot(**fields)  # type: ignore[arg-type]


def test_render_shows_the_figures_an_operator_reads() -> None:
    console = Console(record=True, width=120)
    console.print(render(_snapshot()))
    text = console.export_text()
    for expected in ("12/40 s", "up", "20,000 IPv4", "1,000", "150", "73.1 % of 86.0 % possible", "80.0 %",
                     "1,150 changes/h",
                     "3,000 samples/s", "192.0.2.0/24", "no-route", "1.2 Gb/s", "never hit",
                     "http://127.0.0.1:8080/#token=t"):
        assert expected in text, expected


def test_render_marks_a_fired_cap_guard_and_an_unknown_coverage() -> None:
    console = Console(record=True, width=120)
    console.print(render(_snapshot(cap_guard_fired=True, coverage=None, oracle_coverage=None, switch_fib=None,
                                   duration_s=0.0)))
    text = console.export_text()
    assert "FIRED" in text and "Ctrl-C stops" in text and "–" in text


def test_plain_line_carries_the_same_figures() -> None:
    line = plain_line(_snapshot())
    assert "session=up" in line and "ipv4=1000/1000" in line and "switch_fib=v4:1000,v6:150" in line
    assert "coverage=73.1 % of 86.0 % possible" in line
    assert "requests=192.0.2.1:installed,198.51.100.1:no-route" in line


# --- the ExaBGP stand-in -----------------------------------------------------------------------------


def test_announce_commands_use_one_path_id_and_next_hop_per_peer() -> None:
    routes: list[PeerRoute] = [(f"10.{i // 256}.{i % 256}.0/24", (i % 4,) if i % 3 else (i % 4, (i + 1) % 4))
                               for i in range(3000)]
    lines = announce_commands(4, routes)
    announced: Counter[str] = Counter()
    for line in lines:
        words = line.split()
        assert words[:3] == ["announce", "attributes", "path-information"]
        peer = int(words[3]) - 1
        assert words[4:6] == ["next-hop", PEER_NEXT_HOPS[4][peer]] and words[6] == "nlri"
        assert 0 < len(words[7:]) <= COMMAND_CHUNK
        announced.update(words[7:])
    assert announced == Counter(prefix for prefix, paths in routes for _ in paths)


def test_standin_config_listens_on_its_address_with_add_path_send() -> None:
    text = standin_config(17900, ["/usr/bin/python3", "-m", "topfib.controller.demo.standin", "/r", "/s"])
    assert "listen 17900;" in text and "passive;" in text and "local-address 127.0.0.2;" in text
    assert "add-path send;" in text and "graceful-restart disable;" in text
    assert "run /usr/bin/python3 -m topfib.controller.demo.standin /r /s;" in text


def test_recorder_follows_exabgps_json() -> None:
    recorder = Recorder()
    lines = GOLDEN.read_text().splitlines()
    assert recorder.apply(lines[1]) == "up"
    recorder.apply(lines[2])
    assert recorder.routes["ipv4"] >= {"198.51.100.0/24", "192.0.2.0/24", "10.99.0.0/16", "203.0.113.0/25"}
    for line in lines[3:10]:
        recorder.apply(line)
    before = {family: set(table) for family, table in recorder.routes.items()}
    assert before["ipv6"], "IPv6 announcements recorded"
    recorder.apply(lines[10])  # withdraws 198.51.100.0/24, 192.0.2.0/24, …
    assert "198.51.100.0/24" not in recorder.routes["ipv4"]
    assert recorder.max_routes["ipv4"] == len(before["ipv4"])
    recorder.apply("done")
    recorder.apply("error")
    assert (recorder.acks, recorder.errors) == (2, 1)
    recorder.apply(json.dumps({"type": "state", "neighbor": {"state": "down"}}))
    assert recorder.state == "down" and not recorder.routes["ipv4"] and not recorder.routes["ipv6"]
    assert recorder.status()["max_routes"] == {"ipv4": len(before["ipv4"]), "ipv6": len(before["ipv6"])}


def test_a_corpus_without_ipv6_takes_the_bundled_ipv6(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bgp").mkdir()
    lines = "".join(f"10.{i}.0.0\t16\t{64500 + i}\n" for i in range(50))
    (tmp_path / demo_table.CORPUS_V4).write_bytes(gzip.compress(lines.encode()))
    monkeypatch.setenv(demo_table.CORPUS_ENV, str(tmp_path))
    table = load_demo_table(alpha=1.0, seed=1)
    assert sorted(table.v4.prefixes) == sorted(f"10.{i}.0.0/16" for i in range(50))
    assert len(table.v6.prefixes) == 2000
    assert "IPv4: full table" in table.source and "IPv6: bundled" in table.source


def test_the_summary_reports_coverage_next_to_the_oracle() -> None:
    from topfib.controller.demo.snapshot import Totals, summary

    totals = Totals()
    totals.note(_snapshot(coverage=0.5, oracle_coverage=0.6))
    totals.note(_snapshot(coverage=0.73123, oracle_coverage=0.86041))
    report = summary(totals, {"workdir": "/tmp/x"})
    assert (report["coverage"], report["oracle_coverage"], report["max_coverage"]) == (0.7312, 0.8604, 0.7312)
    assert report["workdir"] == "/tmp/x"
    assert summary(Totals(), {})["oracle_coverage"] is None
