"""TCP-MD5 (RFC 2385) and GTSM (RFC 5082) against a real BIRD switch in the namespace lab.

BIRD's ``password`` / ``ttl security on`` on the switch, ``switch[].md5_password`` /
``switch[].ttl_security`` on topfib's side: the right secret establishes, a wrong one does not,
and topfib says why in ``/v1/status`` and its log. The secret never shows in ExaBGP's output.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest

from tests.integration.lab import Lab, async_wait_until, lab_unavailable_reason, run
from tests.integration.test_end_to_end import _free_port
from topfib.controller.config import TopfibConfig
from topfib.controller.service.run import Service
from topfib.controller.switch.bgp_session.session_diagnosis import SessionDiagnosis

pytestmark = pytest.mark.integration

PASSWORD = "To p#s;e{c}r'e t"  # syntax to ExaBGP's tokeniser; BIRD strings take it as is
VIEWER_TOKEN = "session-security-viewer"
UP_TIMEOUT_S = 15.0
# BIRD retries every second (ExaBGP dials too): a session that can come up does so well within
# this (the right password: up in under 0.5 s); three retries refused is "does not establish"
NOT_UP_S = 3.0
TEST_GRACE_S = 3.0  # session_diagnosis's connect grace in the test that waits it out (product: 15 s)


def _md5_supported() -> bool:
    """TCP-MD5 needs CONFIG_TCP_MD5SIG: ask the kernel with a throwaway socket option."""
    import socket
    import struct

    with socket.socket() as sock:
        address = struct.pack("HH4s120x", socket.AF_INET, 0, socket.inet_aton("127.0.0.1"))
        try:
            sock.setsockopt(socket.IPPROTO_TCP, 14, address + struct.pack("2xH4x80s", 1, b"k"))
        except OSError:
            return False
    return True


@pytest.fixture
def lab_factory() -> Iterator[list[Lab]]:
    reason = lab_unavailable_reason() or (None if _md5_supported() else "kernel without CONFIG_TCP_MD5SIG")
    if reason is not None:
        pytest.skip(reason)
    labs: list[Lab] = []
    with contextlib.ExitStack() as cleanup:  # every lab closed, even if closing one fails
        yield labs
        for lab in labs:
            cleanup.callback(lab.close)


def _lab(labs: list[Lab], **settings: object) -> Lab:
    lab = Lab(routes_v4=3, routes_v6=1, **settings)  # type: ignore[arg-type]
    labs.append(lab)
    return lab.__enter__()


def _tcp_ext(ns: str) -> dict[str, int]:
    lines = run(["ip", "netns", "exec", ns, "cat", "/proc/net/netstat"]).stdout.splitlines()
    names, values = lines[0].split(), lines[1].split()
    return {name: int(value) for name, value in zip(names[1:], values[1:], strict=True)}


def test_the_right_password_establishes_and_stays_out_of_exabgp_output(lab_factory: list[Lab]) -> None:
    lab = _lab(lab_factory, bgp_password=PASSWORD)

    async def body() -> None:
        async with lab.exabgp(switch_overrides={"md5_password": PASSWORD}) as session:
            assert await session.wait_up(UP_TIMEOUT_S), list(session.runner.recent_output)
            assert lab.session_established()
            output = "\n".join(session.runner.recent_output)
        log_text = (lab.workdir / "exabgp.log").read_text()
        for text in (output, log_text):
            assert PASSWORD not in text and base64.b64encode(PASSWORD.encode()).decode() not in text

    asyncio.run(body())
    assert _tcp_ext(lab.sw)["TCPMD5Failure"] == 0


@pytest.mark.parametrize("topfib_password", ["wrong password", None])
def test_a_wrong_or_missing_password_does_not_establish(lab_factory: list[Lab],
                                                        topfib_password: str | None) -> None:
    lab = _lab(lab_factory, bgp_password=PASSWORD)
    overrides: dict[str, object] = {} if topfib_password is None else {"md5_password": topfib_password}

    async def body() -> None:
        async with lab.exabgp(switch_overrides=overrides) as session:
            assert not await session.wait_up(NOT_UP_S)
            assert not lab.session_established()

    asyncio.run(body())
    # the switch's kernel dropped our segments: bad signature, or none where one is required
    counters = _tcp_ext(lab.sw)
    assert counters["TCPMD5Failure" if topfib_password else "TCPMD5NotFound"] > 0


def test_gtsm_on_both_sides_establishes_and_a_one_sided_gtsm_does_not(lab_factory: list[Lab]) -> None:
    both = _lab(lab_factory, ttl_security=True)

    async def body() -> None:
        async with both.exabgp(switch_overrides={"ttl_security": 1}) as session:
            assert await session.wait_up(UP_TIMEOUT_S), list(session.runner.recent_output)
        one_sided = _lab(lab_factory)  # BIRD sends its default TTL, below our minimum of 255
        async with one_sided.exabgp(switch_overrides={"ttl_security": 1}) as session:
            assert not await session.wait_up(NOT_UP_S)
        assert _tcp_ext(one_sided.ctl)["TCPMinTTLDrop"] > 0

    asyncio.run(body())


def _config(lab: Lab, password: str) -> TopfibConfig:
    switch = lab.switch_config(md5_password=password, loop_period_s=0.2)
    dumped = switch.model_dump()
    dumped["md5_password"] = password  # model_dump masks the secret
    return TopfibConfig.model_validate({
        "api": {"listen": f"127.0.0.1:{_free_port()}"},
        "collector": {"sflow_listen": [f"127.0.0.1:{_free_port()}"]},
        "switch": [dumped],
        "token": [{"name": "viewer", "role": "viewer",
                   "sha256": hashlib.sha256(VIEWER_TOKEN.encode()).hexdigest()}],
    })


@asynccontextmanager
async def _running(lab: Lab, password: str) -> AsyncIterator[Service]:
    service = Service(_config(lab, password), runtime_dir=lab.workdir / "topfib", netns=lab.ctl)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def _status(service: Service) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=f"http://{service.config.api.listen}") as http:
        response = await http.get("/v1/status", headers={"Authorization": f"Bearer {VIEWER_TOKEN}"})
    response.raise_for_status()
    [switch] = response.json()["switches"]
    assert isinstance(switch, dict)
    return switch


def test_a_password_mismatch_is_reported_in_status_and_the_log(lab_factory: list[Lab],
                                                               caplog: pytest.LogCaptureFixture) -> None:
    # topfib passive: the switch dials in with its password, topfib's kernel rejects the signature
    lab = _lab(lab_factory, bgp_password=PASSWORD, topfib_passive=True)

    async def body() -> None:
        async with _running(lab, "not the switch's password") as service:
            ctl = next(iter(service.controllers.values()))
            assert await async_wait_until(lambda: ctl.diagnosis.reason is not None, UP_TIMEOUT_S)
            status = await _status(service)
            assert status["session_state"] != "up"
            assert "TCP-MD5 signature mismatch" in str(status["session_reason"])
            assert "switch[].md5_password" in str(status["session_reason"])

    with caplog.at_level(logging.WARNING):
        asyncio.run(body())
    assert "BGP session not up: TCP-MD5 signature mismatch" in caplog.text
    assert PASSWORD not in caplog.text and "not the switch's password" not in caplog.text


def test_with_the_right_password_status_shows_the_session_up_without_a_reason(lab_factory: list[Lab]) -> None:
    lab = _lab(lab_factory, bgp_password=PASSWORD, topfib_passive=True)

    async def body() -> None:
        async with _running(lab, PASSWORD) as service:
            ctl = next(iter(service.controllers.values()))
            assert await async_wait_until(lambda: ctl.session.state == "up", UP_TIMEOUT_S)
            await asyncio.sleep(0.5)  # a loop iteration or two: the diagnosis follows the session
            status = await _status(service)
            assert status["session_state"] == "up" and status["session_reason"] is None

    asyncio.run(body())


def test_when_topfib_dials_a_mismatch_is_reported_with_the_md5_hint(lab_factory: list[Lab]) -> None:
    # the switch's kernel drops our signed SYNs and ours counts nothing: after the grace time the
    # reason says no TCP connection came up and that TCP-MD5 is on
    lab = _lab(lab_factory, bgp_password=PASSWORD)

    async def body() -> None:
        async with _running(lab, "not the switch's password") as service:
            ctl = next(iter(service.controllers.values()))
            # the product's 15 s grace, shortened: what is asserted is the reason, not the wait
            ctl.diagnosis = SessionDiagnosis(ctl.switch, lambda: ctl.runner.pid, connect_grace_s=TEST_GRACE_S)
            assert await async_wait_until(lambda: ctl.diagnosis.reason is not None, TEST_GRACE_S + 10)
            reason = str((await _status(service))["session_reason"])
            assert reason.startswith("no TCP connection to 10.99.0.2 port 179 within")
            assert "TCP-MD5 is on" in reason

    asyncio.run(body())
