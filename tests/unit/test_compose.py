"""docker-compose.yml, the Dockerfiles and docker/ are checked here, as no Docker engine runs in CI.

The file must describe a lab that would work: the four services, builds whose Dockerfiles and
COPY sources exist, bind mounts of files that exist, a topfib config that passes check-config and
agrees with the compose network (addresses, ports, sFlow agent), a BIRD config BIRD itself parses,
and a capture the replayer can send whose samples the switch's peer routes mostly cover.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]

from topfib.collector.common.pcap import udp_payloads
from topfib.collector.sflow.decoder import decode_datagram
from topfib.controller.config import TopfibConfig, load_config, split_host_port

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
SERVICES = {"redis", "topfib", "switch", "replayer"}


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def _service(name: str) -> dict[str, Any]:
    service = _compose()["services"][name]
    assert isinstance(service, dict)
    return service


def _address(name: str) -> str:
    return str(_service(name)["networks"]["lab"]["ipv4_address"])


def _bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """(host path, container path) of each bind mount (``./x:/y[:ro]`` short syntax)."""
    mounts = []
    for volume in service.get("volumes", []):
        assert isinstance(volume, str), f"long volume syntax is not checked here: {volume!r}"
        host, container, *_ = volume.split(":")
        assert host.startswith("./"), f"only bind mounts of repository files are expected: {volume}"
        mounts.append((REPO / host, container))
    return mounts


def _mounted(service: str, container_path: str) -> Path:
    for host, container in _bind_mounts(_service(service)):
        if container == container_path:
            return host
    raise AssertionError(f"{service} does not mount {container_path}")


def _topfib_config() -> TopfibConfig:
    command = _service("topfib")["command"]
    path = command[command.index("--config") + 1]
    return load_config(_mounted("topfib", path))


def test_the_four_services_and_nothing_else() -> None:
    assert set(_compose()["services"]) == SERVICES


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_each_service_has_an_image_or_a_build_that_exists(name: str) -> None:
    service = _service(name)
    assert ("image" in service) != ("build" in service), f"{name}: exactly one of image/build"
    if "image" in service:
        assert re.fullmatch(r"[a-z0-9./-]+:[A-Za-z0-9._-]+", service["image"]), "pin a tag"
        return
    build = service["build"]
    context = REPO / (build if isinstance(build, str) else build.get("context", "."))
    dockerfile = context / ("Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile"))
    assert context.is_dir() and dockerfile.is_file(), f"{name}: {dockerfile}"
    for line in dockerfile.read_text().splitlines():
        if line.startswith(("COPY ", "ADD ")) and "--from=" not in line:  # --from: an earlier stage
            for source in line.split()[1:-1]:
                if not source.startswith("--"):
                    assert list(context.glob(source)), f"{dockerfile.name}: COPY source {source} missing"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_bind_mounted_file_exists(name: str) -> None:
    for host, _ in _bind_mounts(_service(name)):
        assert host.is_file(), f"{name} mounts {host}, which does not exist"


def test_dependencies_name_services() -> None:
    for name in SERVICES:
        for dependency in _service(name).get("depends_on", []):
            assert dependency in SERVICES


def test_addresses_are_distinct_and_on_the_lab_subnet() -> None:
    subnet = ipaddress.ip_network(_compose()["networks"]["lab"]["ipam"]["config"][0]["subnet"])
    addresses = [ipaddress.ip_address(_address(name)) for name in SERVICES]
    assert len(set(addresses)) == len(addresses)
    assert all(address in subnet for address in addresses)


def test_the_mounted_topfib_config_passes_check_config_and_fits_the_network() -> None:
    config = _topfib_config()
    assert config.store.url.startswith("redis://" + _address("redis") + ":6379")
    (switch,) = config.switch
    assert switch.neighbor == _address("switch")
    assert switch.local_address == _address("topfib")
    assert _address("switch") in switch.sflow_agents


def test_published_ports_are_sane_and_reach_the_api() -> None:
    api_port = split_host_port(_topfib_config().api.listen)[1]
    published = []
    for name in SERVICES:
        for port in _service(name).get("ports", []):
            match = re.fullmatch(r"(?:(\d+):)?(\d+)(?:/(tcp|udp))?", str(port))
            assert match, f"{name}: port {port!r}"
            host, container = int(match.group(1) or match.group(2)), int(match.group(2))
            assert 0 < host < 65536 and 0 < container < 65536
            published.append((name, container))
    assert ("topfib", api_port) in published
    assert split_host_port(_topfib_config().api.listen)[0] == "0.0.0.0", "the API must listen beyond loopback"


def test_the_replayer_sends_the_mounted_capture_to_topfibs_sflow_port() -> None:
    replayer = _service("replayer")
    assert replayer.get("entrypoint") == ["topfib"]
    command = replayer["command"]
    assert command[0] == "replay"
    _mounted("replayer", command[1])
    sflow_ports = {split_host_port(item)[1] for item in _topfib_config().collector.sflow_listen}
    host, port = command[command.index("--to") + 1].rsplit(":", 1)
    assert host == _address("topfib") and int(port) in sflow_ports


def _stages() -> list[list[str]]:
    """The Dockerfile's instructions, one list per stage (each from its FROM line)."""
    stages: list[list[str]] = []
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM "):
            stages.append([])
        if line and not line.startswith((" ", "#")) and stages:
            stages[-1].append(line)
    return stages


def test_the_topfib_image_installs_the_wheel_built_in_its_own_stage() -> None:
    build, runtime = _stages()
    assert build[0].endswith(" AS build")
    assert any(line.startswith("RUN pip wheel") and "--no-deps" in line for line in build)
    assert "COPY --from=build /wheels /wheels" in runtime
    assert any(line.startswith("RUN pip install") and "/wheels/topfib-*.whl" in line for line in runtime)
    # the product is the wheel: no editable install, no source tree beside it (the ExaBGP bridge and
    # template are package data found by importlib.resources)
    assert not any("-e ." in line or "--editable" in line for line in build + runtime)
    assert not [line for line in runtime if line.startswith("COPY ") and "--from=build" not in line]
    assert runtime[-1].startswith("CMD ") and 'ENTRYPOINT ["topfib"]' in runtime


def test_the_topfib_image_runs_as_a_user_with_no_capabilities() -> None:
    runtime = _stages()[-1]
    users = [line.split()[1] for line in runtime if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "the runtime stage must switch to a non-root user"
    assert runtime.index(f"USER {users[-1]}") < runtime.index('ENTRYPOINT ["topfib"]')
    config = _topfib_config()
    assert not any(switch.passive for switch in config.switch), "an active session binds no port < 1024"
    for name in ("topfib", "replayer"):  # the same image
        service = _service(name)
        assert service.get("cap_drop") == ["ALL"] and not service.get("cap_add"), name
        assert "no-new-privileges:true" in service.get("security_opt", []), name


def _peer_prefixes() -> list[ipaddress.IPv4Network]:
    text = _mounted("switch", "/etc/bird/peers.conf").read_text()
    return [ipaddress.IPv4Network(p) for p in re.findall(r"route (\S+) via", text)]


def test_bird_parses_the_switch_config() -> None:
    if shutil.which("bird") is None:
        pytest.skip("bird not installed")
    bird_conf = _mounted("switch", "/etc/bird/bird.conf").read_text()
    assert 'include "/etc/bird/peers.conf";' in bird_conf
    assert "import limit 1000 action block" in bird_conf
    assert _topfib_config().switch[0].fib_cap_ipv4 == 1000, "the import limit is the cap's safety net"
    assert "export where source = RTS_BGP" in bird_conf, "only topfib's routes reach the kernel"
    assert "add paths tx" in bird_conf
    local = re.search(r"local (\S+) as (\d+);\s+neighbor (\S+) as (\d+);", bird_conf)
    assert local is not None
    switch = _topfib_config().switch[0]
    assert (local[1], int(local[2]), local[3], int(local[4])) == (
        switch.neighbor, switch.peer_as, switch.local_address, switch.local_as)
    assert len(_peer_prefixes()) > 100


def test_bird_accepts_the_config_with_its_peer_routes(tmp_path: Path) -> None:
    if shutil.which("bird") is None:
        pytest.skip("bird not installed")
    peers = _mounted("switch", "/etc/bird/peers.conf")
    conf = _mounted("switch", "/etc/bird/bird.conf").read_text().replace("/etc/bird/peers.conf", str(peers))
    (tmp_path / "bird.conf").write_text(conf)
    result = subprocess.run(["bird", "-p", "-c", str(tmp_path / "bird.conf")], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    broken = tmp_path / "broken.conf"
    broken.write_text(conf.replace("add paths tx;", "add paths sideways;"))
    assert subprocess.run(["bird", "-p", "-c", str(broken)], capture_output=True, timeout=60,
                          check=False).returncode != 0


def test_the_capture_is_sflow_from_the_switch_mostly_to_peer_prefixes() -> None:
    command = _service("replayer")["command"]
    capture = _mounted("replayer", command[1]).read_bytes()
    agents = set(_topfib_config().switch[0].sflow_agents)
    peers = _peer_prefixes()
    by_length: dict[int, set[int]] = {}
    for network in peers:
        by_length.setdefault(network.prefixlen, set()).add(int(network.network_address))
    samples = routed = 0
    for _, payload in udp_payloads(capture):
        datagram = decode_datagram(payload)
        assert datagram.header.agent in agents
        for sample in datagram.flow_samples:
            samples += 1
            address = int(ipaddress.IPv4Address(sample.dst))
            routed += any(address >> (32 - length) << (32 - length) in networks
                          for length, networks in by_length.items())
    assert samples >= 1000
    assert 0.5 < routed / samples < 1.0, "mostly peer prefixes, some transit-only destinations"
