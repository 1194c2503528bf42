"""Files topfib writes (as root, possibly) never go through a planted symlink or a shared directory.

The helper itself, then each of its users: the traffic matrix writer, ExaBGP's config file, the
line log ExaBGP's output goes to, and the runtime directory ``topfib run`` refuses at start.
"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from topfib.collector.common.metrics import Registry
from topfib.collector.common.safe_files import (
    UnsafePathError,
    ensure_private_dir,
    open_append_text,
    write_atomically,
)
from topfib.collector.matrix.traffic_matrix import MatrixInterval, MatrixRow
from topfib.collector.matrix.writer import MatrixFileWriter
from topfib.controller.config import ConfigError, SwitchConfig, TopfibConfig
from topfib.controller.exabgp.config import BridgeCommand, write_exabgp_config
from topfib.controller.exabgp.line_log import LineLog
from topfib.controller.service.run import Service

START = 1_764_104_400  # 2025-11-25T21:00:00Z
PART_NAME = ".matrix-20251125T210000Z.jsonl.part"


def _victim(tmp_path: Path) -> Path:
    """A file outside every directory topfib writes to, standing for /etc/shadow."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    return victim


def _interval() -> MatrixInterval:
    row = MatrixRow("edge1", 7, "192.0.2.1", 64496, 1500.0, 1.0, 1)
    return MatrixInterval(START, START + 60, True, (row,))


def _switch() -> SwitchConfig:
    return SwitchConfig(name="edge1", neighbor="127.0.0.2", local_address="127.0.0.1", local_as=65000,
                        peer_as=65001, fib_cap_ipv4=10, fib_cap_ipv6=10)


# --- the helper ---------------------------------------------------------------------------------


def test_directories_are_created_0700_parents_included(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    ensure_private_dir(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777, 0o722])
def test_a_directory_others_can_write_is_refused_naming_it(tmp_path: Path, mode: int) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    with pytest.raises(UnsafePathError, match=rf"directory {shared} is writable by group or others"):
        ensure_private_dir(shared)


def test_a_directory_under_a_non_sticky_shared_one_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone may rename our private directory away and plant their own
    with pytest.raises(UnsafePathError, match=rf"directory {shared} is writable"):
        ensure_private_dir(shared / "private")


def test_a_directory_under_a_sticky_shared_one_is_fine(tmp_path: Path) -> None:
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)  # like /tmp: nobody else can rename or delete our entries
    ensure_private_dir(sticky / "private")
    assert stat.S_IMODE((sticky / "private").stat().st_mode) == 0o700


def test_a_directory_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give a directory away")
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, 65534, 65534)
    with pytest.raises(UnsafePathError, match=rf"directory {foreign} is owned by uid 65534"):
        ensure_private_dir(foreign)


@pytest.mark.parametrize("below", ["", "run"])
def test_a_symlink_someone_else_planted_in_a_sticky_directory_is_refused(tmp_path: Path, below: str) -> None:
    """/tmp/topfib -> /etc, planted by a local user before topfib starts: following it, root would
    write its files into a directory of the planter's choosing (the kernel stops this only with
    fs.protected_symlinks = 1)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to plant a symlink owned by someone else")
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    chosen = tmp_path / "etc"  # root's, 0755: a fine directory in itself
    chosen.mkdir(mode=0o755)
    (chosen / "run").mkdir(mode=0o700)
    link = sticky / "topfib"
    link.symlink_to(chosen)
    os.lchown(link, 65534, 65534)
    with pytest.raises(UnsafePathError, match=rf"{link} is a symlink owned by uid 65534"):
        ensure_private_dir(link / below if below else link)
    own = sticky / "ours"  # a symlink of our own is as trustworthy as the directory it is in
    own.symlink_to(chosen)
    ensure_private_dir(own)


def test_appending_through_a_symlink_is_refused_and_the_target_untouched(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    link = tmp_path / "log"
    link.symlink_to(victim)
    with pytest.raises(UnsafePathError, match=rf"{link} is a symlink"):
        open_append_text(link)
    assert victim.read_text() == "precious\n"


def test_appending_to_a_hard_link_or_a_fifo_is_refused(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    hard = tmp_path / "hard"
    os.link(victim, hard)
    with pytest.raises(UnsafePathError, match="other hard links"):
        open_append_text(hard)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UnsafePathError, match="not a regular file"):
        open_append_text(fifo)  # fails at once, no reader needed: never blocks
    assert victim.read_text() == "precious\n"


def test_files_are_created_0600(tmp_path: Path) -> None:
    with open_append_text(tmp_path / "a.log") as out:
        out.write("x\n")
    write_atomically(tmp_path / "b.conf", b"y")
    assert stat.S_IMODE((tmp_path / "a.log").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "b.conf").stat().st_mode) == 0o600


def test_atomic_write_replaces_a_planted_symlink_instead_of_following_it(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    target = tmp_path / "e.conf"
    target.symlink_to(victim)
    write_atomically(target, b"new")
    assert not target.is_symlink() and target.read_bytes() == b"new"
    assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.conf", "victim.txt"]  # no temp file left


# --- the traffic matrix writer --------------------------------------------------------------------


def test_matrix_writer_never_appends_through_a_planted_part_symlink(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    directory = tmp_path / "matrix"
    directory.mkdir(mode=0o700)
    (directory / PART_NAME).symlink_to(victim)
    registry = Registry()
    writer = MatrixFileWriter(directory, "jsonl", 60, 100, registry)
    writer.prepare()  # a crash leftover that is a symlink: reported, not followed, not fatal
    writer.write([_interval()])
    writer.close()
    assert victim.read_text() == "precious\n"
    errors = registry.get("topfib_matrix_write_errors_total")
    assert errors is not None
    assert errors.value(operation="recover") == 1
    assert errors.value(operation="write") == 1


def test_matrix_writer_refuses_a_world_writable_directory(tmp_path: Path) -> None:
    directory = tmp_path / "matrix"
    directory.mkdir()
    directory.chmod(0o777)
    writer = MatrixFileWriter(directory, "jsonl", 60, 100, Registry())
    with pytest.raises(UnsafePathError, match=rf"directory {directory} is writable by group or others"):
        writer.prepare()


def test_matrix_writer_creates_its_directory_0700(tmp_path: Path) -> None:
    writer = MatrixFileWriter(tmp_path / "m", "jsonl", 60, 100, Registry())
    writer.prepare()
    writer.write([_interval()])
    writer.close()
    assert stat.S_IMODE((tmp_path / "m").stat().st_mode) == 0o700
    [written] = list((tmp_path / "m").iterdir())
    assert stat.S_IMODE(written.stat().st_mode) == 0o600


# --- ExaBGP's config file and its output log ------------------------------------------------------


def test_exabgp_config_is_0600_and_replaces_planted_symlinks(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    conf = runtime / "edge1.exabgp.conf"
    conf.symlink_to(victim)
    (runtime / "edge1.exabgp.conf.tmp").symlink_to(victim)  # the temporary name it used to write
    write_exabgp_config(_switch(), BridgeCommand(runtime / "edge1.sock"), conf)
    assert victim.read_text() == "precious\n"
    assert not conf.is_symlink() and "neighbor 127.0.0.2" in conf.read_text()
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600


def test_exabgp_config_refuses_a_shared_runtime_directory(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir()
    runtime.chmod(0o757)
    with pytest.raises(UnsafePathError, match=rf"directory {runtime} is writable"):
        write_exabgp_config(_switch(), BridgeCommand(runtime / "edge1.sock"), runtime / "e.conf")


def test_line_log_never_appends_through_a_planted_symlink(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    path = tmp_path / "run" / "edge1.exabgp.log"
    path.parent.mkdir(mode=0o700)
    path.symlink_to(victim)
    with pytest.raises(UnsafePathError, match=rf"{path} is a symlink"):
        LineLog(path)
    assert victim.read_text() == "precious\n"


def test_line_log_files_are_0600_before_and_after_rotation(tmp_path: Path) -> None:
    log = LineLog(tmp_path / "run" / "edge1.exabgp.log", max_bytes=10)
    log.write("first line")  # crosses the bound: rotated, a new file opened
    log.write("second")
    log.close()
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.previous.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.path.parent.stat().st_mode) == 0o700


def test_run_refuses_a_world_writable_runtime_directory_naming_the_key(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir()
    runtime.chmod(0o777)
    config = TopfibConfig.model_validate({
        "api": {"listen": "127.0.0.1:18080"}, "collector": {"sflow_listen": ["127.0.0.1:16343"]},
        "exabgp": {"runtime_dir": str(runtime)},
        "switch": [_switch().model_dump()],
    })
    service = Service(config)
    expected = rf"exabgp\.runtime_dir: cannot use {runtime}: directory {runtime} is writable by group"
    with pytest.raises(ConfigError, match=expected):
        asyncio.run(service.start())
