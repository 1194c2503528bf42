"""C and Python sFlow decoders agree under hostile sequence and state games: sub-agent churn
around the 64-stream bound, data sources around the 1,024-baseline bound, sequence numbers
jumping, wrapping, going back, agents restarting, in batches of any size."""

from __future__ import annotations

import dataclasses
import random

import pytest

from topfib.collector.sflow.encode import FlowSampleSpec, encode_datagram
from topfib.collector.sflow.fast import FastSflowDecoder
from topfib.collector.sflow.fast_fallback import MAX_DATA_SOURCES, MAX_SUB_AGENTS

pytestmark = pytest.mark.skipif(FastSflowDecoder("c")._c is None, reason="the C decoder is not built")
AGENTS = ("192.0.2.1", "2001:db8::1")
SPEC = FlowSampleSpec(src="203.0.113.1", dst="198.51.100.7")


def hostile_stream(rng: random.Random, count: int) -> list[tuple[bytes, str]]:
    sequences: dict[tuple[str, int], int] = {}
    datagrams = [  # first, one stream sweeping past its drop-baseline bound
        (encode_datagram(AGENTS[0], 7, n, 1000, [dataclasses.replace(SPEC, input_if=n * 5 + i, drops=n) for i in range(5)]), AGENTS[0])  # noqa: E501
        for n in range(1, (MAX_DATA_SOURCES + 200) // 5)
    ]
    for _ in range(count):
        agent = rng.choice(AGENTS)
        sub_agent = rng.choice((0, 1, rng.randrange(MAX_SUB_AGENTS + 16), rng.randrange(1 << 32)))
        previous = sequences.get((agent, sub_agent), rng.randrange(1 << 32))
        step = rng.choice((1, 1, 2, 50, -1, -3, (1 << 31) - 1, 1 << 31, -(1 << 20), rng.randrange(1 << 32)))
        sequence = sequences[(agent, sub_agent)] = (previous + step) & 0xFFFFFFFF
        uptime = rng.choice((10_000_000, 10_000_500, 100, rng.randrange(1 << 32)))
        samples = [
            dataclasses.replace(
                SPEC,
                input_if=rng.choice((1, 2, rng.randrange(MAX_DATA_SOURCES + 200) + 1)),
                drops=rng.choice((0, rng.randrange(1 << 32))),
            )
            for _ in range(rng.randrange(0, 6))
        ]
        datagrams.append((encode_datagram(agent, sub_agent, sequence, uptime, samples), agent))
    return datagrams


@pytest.mark.parametrize("seed", range(4))
def test_c_and_python_decoders_agree_on_hostile_sequences_and_churn(seed: int) -> None:
    rng = random.Random(seed)
    datagrams = hostile_stream(rng, 4000)
    decoders = {name: FastSflowDecoder(name) for name in ("c", "python")}
    start = 0
    limited_seen: set[str] = set()
    while start < len(datagrams):
        end = start + rng.randrange(1, 400)
        batches = {}
        for name, decoder in decoders.items():
            decoder.feed_many(datagrams[start:end])
            batches[name] = decoder.take()
        c, python = batches["c"], batches["python"]
        assert c.lost_datagrams == python.lost_datagrams
        assert c.agent_drops == python.agent_drops
        assert c.state_limited == python.state_limited
        assert (c.flow_samples, c.malformed) == (python.flow_samples, python.malformed)
        assert decoders["c"].state_sizes() == decoders["python"].state_sizes()
        limited_seen.update(c.state_limited)
        start = end
    agents, streams, _drops = decoders["c"].state_sizes()
    assert agents == 2 and streams <= 2 * MAX_SUB_AGENTS
    assert limited_seen == {"sflow_sub_agent_evicted", "sflow_data_source_refused"}
