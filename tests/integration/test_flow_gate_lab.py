"""Spoofed sFlow cannot steer the FIB: the BIRD lab, topfib's service, sFlow over loopback.

A stranger on 127.0.0.2 writes the switch's agent address into its datagrams and sends ten times
the real agent's traffic for prefixes of its choosing; only the real agent's prefixes (sent from
127.0.0.1, one of the switch's flow sources) reach the switch's kernel FIB.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from tests.integration.lab import Lab
from tests.integration.test_end_to_end import AGENT, _converged, _host_in, _ready, running
from topfib.collector.sflow.encode import FlowSampleSpec, encode_datagram
from topfib.controller.service.run import Service

pytestmark = pytest.mark.integration


def _send_from(source: str, service: Service, destinations: list[str], rounds: int) -> None:
    host, port = service.config.collector.sflow_listen[0].rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sequence = 0
        for _ in range(rounds):
            for dst in destinations:
                sequence += 1
                specs = [FlowSampleSpec(src="198.51.100.7", dst=dst, sampling_rate=1000) for _ in range(5)]
                sock.sendto(encode_datagram(AGENT, 0, sequence, sequence * 10, specs), (host, int(port)))


async def _spoofed_agent_cannot_steer_the_fib(lab: Lab) -> None:
    async with running(lab, cap_v4=4, cap_v6=4) as service:
        await _ready(service)
        v4_24 = [p for p in lab.prefixes_v4 if p.endswith("/24")]
        real, spoofed = v4_24[:2], v4_24[2:6]
        _send_from("127.0.0.2", service, [_host_in(p) for p in spoofed], rounds=200)
        _send_from("127.0.0.1", service, [_host_in(p) for p in real], rounds=20)
        assert await lab.wait_fib(lambda fib: set(real) <= set(fib), 20.0), "real prefixes missing"
        assert await _converged(lab, service)
        assert not set(spoofed) & set(lab.fib_next_hops()), "spoofed traffic reached the FIB"
        gate = service.collector.flow_gate
        assert gate is not None and gate.refused["source"] == 200 * len(spoofed)


def test_spoofed_agent_cannot_steer_the_fib(lab: Lab) -> None:
    asyncio.run(_spoofed_agent_cannot_steer_the_fib(lab))
