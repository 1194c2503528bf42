"""The collector benchmark's own parts: the config it gives ``topfib run``, how it reads topfib's
counters, CPU and receive queues from /proc, its loss arithmetic and its generated table."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.bench_collector import Trial
from bench.bench_tables import generated_tables
from bench.daemon_cpu import cpu_by_thread, cpu_seconds, process_tree
from bench.sfacctd_daemon import Count, compare_prefixes
from bench.topfib_daemons import metric_sums, topfib_config, udp_receive_queue
from topfib.collector.common.special_use import SpecialUseFilter
from topfib.controller.config import parse_config


def _config(tmp_path: Path, settings: list[str]) -> str:
    return topfib_config(
        "127.0.0.1:18080",
        16343,
        tmp_path / "rib.pfx2as",
        ["192.0.2.1", "192.0.2.2"],
        4 << 20,
        tmp_path,
        settings,
    )


def test_the_benchmark_config_is_one_topfib_accepts(tmp_path: Path) -> None:
    config = parse_config(_config(tmp_path, []))
    (switch,) = config.switch
    assert switch.rib_file == str(tmp_path / "rib.pfx2as")
    assert switch.sflow_agents == ["192.0.2.1", "192.0.2.2"]
    assert switch.effective_flow_sources == ["127.0.0.1/32"]  # the sender: the flow gate lets it in
    assert switch.neighbor == "127.0.0.1" and switch.bgp_port != 179
    assert config.collector.sflow_listen == ["127.0.0.1:16343"]
    assert config.collector.receive_buffer_bytes == 4 << 20


def test_settings_change_any_section_and_the_switch(tmp_path: Path) -> None:
    config = parse_config(
        _config(tmp_path, ["matrix.enabled=false", "switch.loop_period_s=5.0", "exabgp.reactor_speed = 1.0"])
    )
    assert config.matrix.enabled is False
    assert config.switch[0].loop_period_s == 5.0
    assert config.exabgp.reactor_speed == 1.0


@pytest.mark.parametrize("setting", ["matrix", "enabled=false", "matrix.enabled="])
def test_a_malformed_setting_is_refused_naming_it(tmp_path: Path, setting: str) -> None:
    with pytest.raises(ValueError, match="--topfib-set"):
        _config(tmp_path, [setting])


def test_metric_sums_add_up_label_sets_and_skip_comments() -> None:
    text = (
        "# HELP topfib_sflow_samples_total IP flow samples accounted, by switch.\n"
        "# TYPE topfib_sflow_samples_total counter\n"
        'topfib_sflow_samples_total{switch="a"} 10\n'
        'topfib_sflow_samples_total{switch="b"} 5.5\n'
        "topfib_sflow_datagrams_total 7\n"
        'topfib_x{label="has a space"} NaN-ish\n'
    )
    sums = metric_sums(text)
    assert sums["topfib_sflow_samples_total"] == 15.5
    assert sums["topfib_sflow_datagrams_total"] == 7
    assert "topfib_x" not in sums


def test_udp_receive_queue_sees_datagrams_waiting_and_drained() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        receiver.bind(("127.0.0.1", 0))
        port = receiver.getsockname()[1]
        assert udp_receive_queue(port) == 0
        for _ in range(3):
            sender.sendto(b"x" * 100, ("127.0.0.1", port))
        assert udp_receive_queue(port) >= 300
        receiver.settimeout(1)
        for _ in range(3):
            receiver.recv(200)
        assert udp_receive_queue(port) == 0


def test_cpu_of_a_process_tree_includes_its_children() -> None:
    """A parent that only waits, a child that burns ~0.3 s of CPU: the tree is charged for it."""
    burn = (
        "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\ntime.sleep(30)"
    )
    parent_code = (
        f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {burn!r}])\ntime.sleep(30)"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    try:
        deadline = time.monotonic() + 20
        while cpu_seconds(parent.pid) < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        tree = process_tree(parent.pid)
        assert len(tree) == 2 and tree[0] == parent.pid
        assert cpu_seconds(parent.pid) >= 0.3
        child_alone = cpu_seconds(tree[1])
        assert child_alone >= 0.28
        assert any(name.endswith(" main") for name in cpu_by_thread(tree[1]))
    finally:
        for pid in reversed(process_tree(parent.pid)):
            os.kill(pid, 9)
        parent.wait()


def test_loss_is_by_packets_where_a_daemon_reports_them_else_by_samples() -> None:
    sfacctd = Trial("sfacctd", 1e5, 1e5, 700, 7000, Count(6930.0, 1.0, 0.7))
    assert not sfacctd.lossless and sfacctd.loss_pct == pytest.approx(1.0)
    assert sfacctd.cpu_per_million == pytest.approx(0.7 / (693 / 1e6))
    topfib = Trial("topfib", 1e5, 1e5, 700, 7000, Count(None, None, 1.4, 700.0, 0, 0))
    assert topfib.lossless and topfib.loss_pct == 0.0
    assert topfib.cpu_per_million == pytest.approx(2000.0)
    short = Trial("topfib", 1e5, 1e5, 700, 7000, Count(None, None, 1.4, 693.0, 0, 7))
    assert not short.lossless and short.loss_pct == pytest.approx(1.0)


def test_the_generated_table_avoids_every_range_topfib_refuses() -> None:
    v4, v6 = generated_tables(3000)
    assert len(v4.networks) == 3000 and len(v6.networks) == 300
    refuse = SpecialUseFilter.from_settings(documentation=True, shared_address_space=True)
    for family, table in ((4, v4), (6, v6)):
        for prefix in table.prefix_strings(family):
            assert ipaddress.ip_network(prefix)  # host bits clear, else ValueError
            assert refuse.reason(prefix) is None, prefix
    assert sum(length == 24 for length in v4.lengths) > 1000


def test_prefix_comparison_counts_equal_ipv4_byte_totals_only() -> None:
    sfacctd = {"1.0.0.0/24": (1, 100), "2.0.0.0/24": (1, 200), "0.0.0.0/0": (9, 900), "2001:db8::/32": (1, 5)}
    topfib = {"1.0.0.0/24": 100.0, "2.0.0.0/24": 201.0, "3.0.0.0/24": 7.0, "unrouted": 900.0}
    summary = compare_prefixes(sfacctd, topfib)
    assert "sfacctd 2, topfib 3, in both 2, equal bytes 1 (50.00 %)" in summary
    assert "only in sfacctd 0, only in topfib 1" in summary
