"""Re-record ExaBGP 5 JSON from BIRD 2 and check today's ExaBGP still speaks what the parser reads.

Runs scripts/record_exabgp_json.py (its own namespaces tfrec-ctl / tfrec-sw) into a temporary
file. Path-ids and timestamps may differ from the committed golden file; the event sequence,
prefixes and attributes may not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path as FilePath

import pytest

from tests.unit.test_exabgp_json_golden import EXPECTED, GOLDEN
from topfib.collector.rib.events import Event, RouteUpdate, SessionState
from topfib.collector.rib.exabgp_json import ExabgpJsonParser

pytestmark = pytest.mark.integration
REPO = FilePath(__file__).resolve().parent.parent.parent


def per_neighbor(lines: list[list[Event]]) -> dict[str | None, list[tuple[object, ...]]]:
    """Each neighbor's events in order, without path-ids (BIRD numbers them per run); the two
    sessions interleave differently from run to run."""
    out: dict[str | None, list[tuple[object, ...]]] = defaultdict(list)
    for events in lines:
        for event in events:
            if isinstance(event, RouteUpdate):
                path = event.path
                attributes = None if path is None else (
                    path.next_hop, path.as_path, path.origin, path.local_pref, path.med,
                    path.communities, path.large_communities)
                out[event.neighbor].append(("update", event.family, event.prefix, attributes))
            else:
                out[event.neighbor].append((event,))
    return {neighbor: _without_retries(events) for neighbor, events in out.items()}


def _without_retries(events: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """Drop ExaBGP's reconnect attempts after a session went down (``connected`` then ``down``
    again): how many fit before the recording stops depends on timing."""
    kept: list[tuple[object, ...]] = []
    i = 0
    while i < len(events):
        if (i + 1 < len(events) and kept and _state(kept[-1]) == "down"
                and _state(events[i]) == "connected" and _state(events[i + 1]) == "down"):
            i += 2
            continue
        kept.append(events[i])
        i += 1
    return kept


def _state(item: tuple[object, ...]) -> str | None:
    event = item[0]
    return event.state if isinstance(event, SessionState) else None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
@pytest.mark.skipif(shutil.which("bird") is None, reason="BIRD 2 not installed")
def test_recording_matches_the_golden_shape(tmp_path: FilePath) -> None:
    output = tmp_path / "recorded.jsonl"
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "record_exabgp_json.py"), str(output)],
                            capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert "tfrec-" not in namespaces  # cleaned up
    parser = ExabgpJsonParser()
    recorded = [parser.parse_line(line) for line in output.read_text().splitlines()]
    assert set(parser.counters) == {"lines"}  # nothing unknown or malformed
    assert per_neighbor(recorded) == per_neighbor(EXPECTED)
    assert GOLDEN.exists()
