"""A config reload in the BIRD lab: the switch's kernel FIB shrinks to a cap lowered in the file,
over the same BGP session (BIRD's protocol never leaves Established, ExaBGP keeps its PID).

The reload is :meth:`Service.reload`, what ``topfib run``'s SIGHUP handler calls; sFlow goes to
topfib's listener on loopback and every assertion about the switch reads its kernel FIB or BIRD.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from tests.integration.lab import BGP_PROTOCOL, LAB_SPECIAL_USE, Lab, async_wait_until, lab_unavailable_reason
from topfib.collector.sflow.encode import FlowSampleSpec, encode_datagram
from topfib.controller.config import load_config
from topfib.controller.service.reload import CONFIG_RELOADS
from topfib.controller.service.run import Service

pytestmark = pytest.mark.integration

AGENT = "192.0.2.201"
CAP_V4, LOWERED_V4 = 6, 2


def _free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # strings and lists of strings: JSON's forms are TOML's here


def _table(header: str, values: dict[str, object]) -> str:
    body = "".join(f"{key} = {_toml_value(value)}\n" for key, value in values.items() if value is not None)
    return f"{header}\n{body}"


def _config_text(lab: Lab, api: str, sflow: str, cap_v4: int) -> str:
    switch = lab.switch_config(fib_cap_ipv4=cap_v4, fib_cap_ipv6=2, sflow_agents=[AGENT],
                               flow_sources=["127.0.0.1"], loop_period_s=0.2, min_dwell_s=0.0)
    return "".join([
        _table("[api]", {"listen": api}),
        _table("[collector]", {"sflow_listen": [sflow], "receive_buffer_bytes": 1 << 20,
                               "fast_half_life_s": 5.0}),
        _table("[special_use]", dict(LAB_SPECIAL_USE)),
        _table("[[switch]]", {key: value for key, value in switch.model_dump().items()
                              if key != "md5_password"}),
    ])


def _send_sflow(sflow: str, destinations: list[str], rounds: int = 20) -> None:
    host, port = sflow.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for sequence in range(1, rounds + 1):
            specs = [FlowSampleSpec(src="198.51.100.7", dst=dst, sampling_rate=1000)
                     for dst in destinations for _ in range(3)]
            sock.sendto(encode_datagram(AGENT, 0, sequence, sequence * 10, specs), (host, int(port)))


def _protocol_line(lab: Lab) -> str:
    """BIRD's line for topfib's session: its state and since when (a reset changes the time)."""
    return next(line for line in lab.birdc("show", "protocols", BGP_PROTOCOL).splitlines()
                if line.startswith(BGP_PROTOCOL))


async def _reload_shrinks_the_fib(lab: Lab, path: Path) -> None:
    api, sflow = f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port(socket.SOCK_DGRAM)}"
    path.write_text(_config_text(lab, api, sflow, CAP_V4))
    service = Service(load_config(path), runtime_dir=lab.workdir / "topfib", netns=lab.ctl)
    await service.start()
    try:
        ctl = service.controllers["labsw"]
        assert await async_wait_until(ctl.ready_to_program, 30.0), f"session not ready: {ctl.session}"
        hot = [p for p in lab.prefixes_v4 if p.endswith("/24")][:10]
        for _ in range(3):
            await asyncio.to_thread(_send_sflow, sflow, [p.split("/")[0][:-1] + "9" for p in hot])
            await asyncio.sleep(0.3)
        assert await lab.wait_fib(lambda fib: sum(":" not in p for p in fib) == CAP_V4, 20.0), \
            sorted(lab.fib_next_hops())
        exabgp_pid, session = ctl.runner.pid, _protocol_line(lab)
        assert "Established" in session, session
        ok_before = CONFIG_RELOADS.value(result="ok")

        path.write_text(_config_text(lab, api, sflow, LOWERED_V4))
        service.reload(path)
        assert CONFIG_RELOADS.value(result="ok") == ok_before + 1
        assert await lab.wait_fib(lambda fib: sum(":" not in p for p in fib) == LOWERED_V4, 15.0), \
            sorted(lab.fib_next_hops())
        assert await lab.wait_fib(lambda fib: fib == ctl.installed and not ctl.link.pending_acks, 15.0)
        assert ctl.runner.pid == exabgp_pid
        assert _protocol_line(lab) == session  # the same Established session: never reset
    finally:
        await service.stop()
    assert not lab.import_limit_fired()


def test_a_reload_shrinks_the_switch_fib_to_the_lowered_cap_without_a_session_reset(tmp_path: Path) -> None:
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with Lab(routes_v4=40, routes_v6=12) as lab:
        asyncio.run(_reload_shrinks_the_fib(lab, tmp_path / "topfib.toml"))
