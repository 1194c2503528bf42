"""The RIB at the end of its prefix id space (lowered to a handful of ids to reach it)."""

from __future__ import annotations

import importlib.util
import logging
import sys
import types

import pytest

import topfib.collector.rib as rib_package
from topfib.collector.common.prefixes import IPV4
from topfib.collector.rib import keymap
from topfib.collector.rib.events import RouteUpdate
from topfib.collector.rib.keymap import IdSpaceExhausted
from topfib.collector.rib.lpm import LpmTable
from topfib.collector.rib.paths import BgpPath
from topfib.collector.rib.rib import REFUSED_FULL, Rib

PATH = BgpPath(next_hop="192.0.2.1", peer="s")
V4 = "ipv4 unicast"


def _update(prefix: str, path: BgpPath | None) -> RouteUpdate:
    family = "ipv6 unicast" if ":" in prefix else V4
    return RouteUpdate(neighbor="s", family=family, path_id=0, prefix=prefix, path=path)


@pytest.fixture
def full_rib(monkeypatch: pytest.MonkeyPatch) -> Rib:
    """A RIB whose last id (5) is taken: 5 IPv4 prefixes and one IPv6 prefix."""
    monkeypatch.setattr(keymap, "MAX_ID", 5)
    rib = Rib()
    for i in range(5):
        rib.announce("s", f"10.0.{i}.0/24", PATH)
    rib.announce("s", "2001:db8::/32", PATH)
    return rib


def _id_arrays(rib: Rib) -> tuple[int, int, int, int, int]:
    lpm = rib.lpm
    return (len(lpm._present), len(lpm._length_of), len(lpm._network_of), len(lpm._v4_ids),
            len(lpm._v6_ids))


def test_a_line_at_the_limit_applies_around_the_refused_announce(
        full_rib: Rib, caplog: pytest.LogCaptureFixture) -> None:
    before = REFUSED_FULL.value()
    line = [_update("10.0.0.0/24", None), _update("10.9.0.0/24", PATH), _update("10.0.1.0/24", None)]
    with caplog.at_level(logging.WARNING, logger="topfib.collector.rib.rib"):
        changes = full_rib.apply_all(line)
    assert [(change.prefix, change.best) for change in changes] == [
        ("10.0.0.0/24", None), ("10.0.1.0/24", None)]
    assert full_rib.best("10.0.0.0/24") is None and full_rib.best("10.0.1.0/24") is None
    assert full_rib.best("10.9.0.0/24") is None
    assert full_rib.refused_full == 1 and REFUSED_FULL.value() == before + 1
    [record] = [r for r in caplog.records if "RIB full" in r.getMessage()]
    assert "10.9.0.0/24" in record.getMessage() and "limit of 6 prefix ids" in record.getMessage()


def test_retries_leave_no_orphan_ids_and_log_within_budget(
        full_rib: Rib, caplog: pytest.LogCaptureFixture) -> None:
    ids = _id_arrays(full_rib)
    with caplog.at_level(logging.WARNING, logger="topfib.collector.rib.rib"):
        for _ in range(1000):
            with pytest.raises(IdSpaceExhausted, match="limit of 6"):
                full_rib.announce("s", "10.9.0.0/24", PATH)
            assert full_rib.apply_all([_update("10.9.0.0/24", PATH)]) == []
            assert full_rib.apply(_update("10.9.1.0/24", PATH)) == []
    assert _id_arrays(full_rib) == ids and len(full_rib._routes) == ids[0]
    assert full_rib.refused_full == 2000
    assert len([r for r in caplog.records if "RIB full" in r.getMessage()]) == 1


def test_ipv6_shares_the_limit(full_rib: Rib) -> None:
    ids = _id_arrays(full_rib)
    with pytest.raises(IdSpaceExhausted):
        full_rib.announce("s", "2001:db8:1::/48", PATH)
    assert full_rib.apply_all([_update("2001:db8:1::/48", PATH)]) == []
    assert full_rib.lpm.id_of("2001:db8:1::/48") is None and _id_arrays(full_rib) == ids


def test_a_known_prefix_comes_back_on_its_old_id_at_the_limit(full_rib: Rib) -> None:
    old_id = full_rib.lpm.id_of("10.0.2.0/24")
    full_rib.withdraw("s", "10.0.2.0/24", "s", 0)
    [change] = full_rib.apply_all([_update("10.0.2.0/24", PATH)])
    assert change.best is PATH and full_rib.lpm.id_of("10.0.2.0/24") == old_id


def test_lookups_at_the_limit_do_not_take_ids(full_rib: Rib) -> None:
    ids = _id_arrays(full_rib)
    assert full_rib.best("10.9.0.0/24") is None and not full_rib.lpm.knows("10.9.0.0/24")
    assert full_rib.lpm.lookup("10.9.0.1") is None
    assert _id_arrays(full_rib) == ids


def test_lpm_table_add_checks_the_limit_before_writing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keymap, "MAX_ID", 1)
    table = LpmTable(["10.0.0.0/8", "2001:db8::/32"])
    for prefix in ("11.0.0.0/8", "2001:db9::/32"):
        with pytest.raises(IdSpaceExhausted):
            table.add(prefix)
    assert len(table._present) == len(table._length_of) == 2 and len(table._v6_network) == 1


def test_the_index_of_a_dropped_table_says_so() -> None:
    pairs = LpmTable(["10.0.0.0/8"])._key_id_pairs(IPV4)
    with pytest.raises(ReferenceError, match="outlived its LPM table"):
        next(pairs())


def test_a_stale_c_build_is_reported_with_the_rebuild_command(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    stale = types.ModuleType("_keymap_fast")
    stale.SLOT_LAYOUT = keymap.SLOT_LAYOUT - 1  # type: ignore[attr-defined]
    monkeypatch.setattr(rib_package, "_keymap_fast", stale, raising=False)
    monkeypatch.setitem(sys.modules, "topfib.collector.rib._keymap_fast", stale)
    spec = importlib.util.spec_from_file_location("keymap_stale_copy", keymap.__file__)
    assert spec is not None and spec.loader is not None
    copy = importlib.util.module_from_spec(spec)
    with caplog.at_level(logging.WARNING, logger="keymap_stale_copy"):
        spec.loader.exec_module(copy)
    assert copy._probe is copy.probe_py
    [record] = caplog.records
    assert "pip install -e ." in record.getMessage() and "scripts/setup.sh" in record.getMessage()
