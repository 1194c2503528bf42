"""The service's collector behind a real listener: sFlow over loopback UDP from allowed and
spoofing sources (127.0.0.2 is a loopback address of its own on Linux)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from topfib.collector.common.metrics import Registry
from topfib.collector.flow.receiver import FlowReceiver
from topfib.collector.sflow.encode import FlowSampleSpec, encode_datagram
from topfib.controller.config import TopfibConfig
from topfib.controller.service.run import Service

SPEC = FlowSampleSpec(src="203.0.113.1", dst="198.51.100.7")


def service(tmp_path: Path, flow_sources: list[str] | None) -> Service:
    switch = {"name": "edge1", "neighbor": "10.0.0.2", "local_address": "10.0.0.1", "local_as": 65000,
              "peer_as": 65000, "fib_cap_ipv4": 10, "fib_cap_ipv6": 10, "sflow_agents": ["127.0.0.1"]}
    if flow_sources is not None:
        switch["flow_sources"] = flow_sources
    config = TopfibConfig.model_validate({
        # the test binds its own listener: these ports are never bound
        "api": {"listen": "127.0.0.1:18082"}, "collector": {"sflow_listen": ["127.0.0.1:16345"]},
        "switch": [switch],
    })  # fmt: skip
    return Service(config, runtime_dir=tmp_path)


def send_from(source: str, port: int, agent: str, count: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        for sequence in range(1, count + 1):
            sock.sendto(encode_datagram(agent, 0, sequence, sequence, [SPEC] * 2), ("127.0.0.1", port))


def run(svc: Service, senders: list[tuple[str, str, int]]) -> None:
    listener = FlowReceiver(svc.collector, ["127.0.0.1:0"], 1 << 20, gil_switch_interval_s=None,
                             registry=Registry())
    listener.start()
    try:
        port = listener.addresses[0][1]
        for source, agent, count in senders:
            send_from(source, port, agent, count)
        expected = sum(count for _, _, count in senders)
        deadline = time.monotonic() + 5.0
        while listener.received < expected and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        listener.stop()


def test_only_the_agent_from_its_own_address_is_accounted(tmp_path: Path) -> None:
    svc = service(tmp_path, None)
    own, spoofed_source, spoofed_agent = ("127.0.0.1", "127.0.0.1", 20), ("127.0.0.2", "127.0.0.1", 30), (
        "127.0.0.1", "192.0.2.99", 40)
    run(svc, [own, spoofed_source, spoofed_agent])
    assert svc.collector.totals.flow_samples == 20 * 2
    assert svc.collector.flow_gate is not None
    assert svc.collector.flow_gate.refused == {"source": 30, "agent": 40, "exporter": 0}


def test_flow_sources_cidr_admits_a_relay_subnet(tmp_path: Path) -> None:
    svc = service(tmp_path, ["127.0.0.0/30"])
    run(svc, [("127.0.0.2", "127.0.0.1", 10), ("127.0.0.5", "127.0.0.1", 10)])
    assert svc.collector.totals.flow_samples == 10 * 2
    assert svc.collector.flow_gate is not None
    assert svc.collector.flow_gate.refused == {"source": 10, "agent": 0, "exporter": 0}
