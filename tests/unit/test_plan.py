"""Planning: exact ExaBGP command lines (golden), checked again with ExaBGP's own parser."""

from __future__ import annotations

from typing import Any

import pytest

from collector.paths import Path
from collector.prefixes import PrefixError
from controller.plan import Plan, Step, plan, render_commands
from controller.static_rib import StaticRib

SWITCH = "10.0.0.2"
NH1, NH2 = "192.0.2.1", "192.0.2.2"
NH6 = "2001:db8::1"


def test_golden_withdraws_first_then_announces_batched_by_next_hop() -> None:
    installed = {"198.51.100.0/24": NH1, "203.0.113.0/24": NH1, "2001:db8:9::/48": NH6, "10.0.0.0/8": NH2}
    desired = {
        "203.0.113.0/24": NH2,  # next-hop change: one re-announce
        "10.0.0.0/8": NH2,  # unchanged: nothing
        "198.18.0.0/15": NH1,
        "192.0.2.0/24": NH1,
        "100.64.0.0/10": NH2,
        "2001:db8:1::/48": NH6,
    }
    assert render_commands(plan(desired, installed), SWITCH) == [
        "neighbor 10.0.0.2 withdraw attributes nlri 198.51.100.0/24",
        "neighbor 10.0.0.2 withdraw attributes nlri 2001:db8:9::/48",
        "neighbor 10.0.0.2 announce attributes next-hop 192.0.2.1 nlri 192.0.2.0/24 198.18.0.0/15",
        "neighbor 10.0.0.2 announce attributes next-hop 192.0.2.2 nlri 100.64.0.0/10 203.0.113.0/24",
        "neighbor 10.0.0.2 announce attributes next-hop 2001:db8::1 nlri 2001:db8:1::/48",
    ]


def test_golden_issue_example() -> None:
    first = plan({"198.51.100.0/24": NH1, "203.0.113.0/24": NH1}, {})
    assert render_commands(first, SWITCH) == [
        "neighbor 10.0.0.2 announce attributes next-hop 192.0.2.1 nlri 198.51.100.0/24 203.0.113.0/24"
    ]
    second = plan({"203.0.113.0/24": NH1}, {"198.51.100.0/24": NH1, "203.0.113.0/24": NH1})
    assert render_commands(second, SWITCH) == ["neighbor 10.0.0.2 withdraw attributes nlri 198.51.100.0/24"]


def test_ipv6_neighbor_and_chunking() -> None:
    desired = {f"10.0.{i}.0/24": NH1 for i in range(5)}
    lines = render_commands(plan(desired, {}), "2001:db8::2", chunk=2)
    assert lines == [
        "neighbor 2001:db8::2 announce attributes next-hop 192.0.2.1 nlri 10.0.0.0/24 10.0.1.0/24",
        "neighbor 2001:db8::2 announce attributes next-hop 192.0.2.1 nlri 10.0.2.0/24 10.0.3.0/24",
        "neighbor 2001:db8::2 announce attributes next-hop 192.0.2.1 nlri 10.0.4.0/24",
    ]
    assert (
        len(render_commands(plan({f"10.{i // 256}.{i % 256}.0/24": NH1 for i in range(2500)}, {}), SWITCH))
        == 3
    )


def test_nothing_to_do_is_an_empty_plan() -> None:
    same = {"10.0.0.0/8": NH1}
    assert not plan(same, same)
    assert render_commands(plan(same, same), SWITCH) == []


def test_a_prefix_whose_last_path_vanished_is_withdrawn_and_a_changed_best_is_followed() -> None:
    rib = StaticRib({"10.1.0.0/16": [Path(next_hop=NH2, peer=NH2)]})
    installed = {"10.0.0.0/16": NH1, "10.1.0.0/16": NH1}
    result = plan({"10.0.0.0/16": NH1, "10.1.0.0/16": NH1}, installed, rib=rib)
    assert result == Plan(
        (
            Step("withdraw", 4, None, ("10.0.0.0/16",)),
            Step("announce", 4, NH2, ("10.1.0.0/16",)),
        )
    )
    assert (result.withdraws, result.announces) == (1, 1)


def test_a_best_path_with_an_unusable_next_hop_is_withdrawn_not_announced() -> None:
    rib = StaticRib({"10.1.0.0/16": [Path(next_hop="0.0.0.0", peer="file")],
                     "10.2.0.0/16": [Path(next_hop=NH2, peer=NH2)]})
    installed = {"10.1.0.0/16": NH1, "10.2.0.0/16": NH1}
    result = plan(dict(installed), installed, rib=rib, unusable={"", "0.0.0.0", "::"})
    assert result == Plan((Step("withdraw", 4, None, ("10.1.0.0/16",)),
                           Step("announce", 4, NH2, ("10.2.0.0/16",))))
    assert plan(dict(installed), installed, rib=rib).announces == 2  # unfiltered, it would be announced


def test_malformed_tokens_are_refused_not_rendered() -> None:
    with pytest.raises(PrefixError):
        render_commands(Plan((Step("withdraw", 4, None, ("10.0.0.0/8\nneighbor * teardown",)),)), SWITCH)
    with pytest.raises(ValueError):
        render_commands(Plan((Step("announce", 4, "192.0.2.1 med 5", ("10.0.0.0/8",)),)), SWITCH)
    with pytest.raises(ValueError):
        render_commands(plan({"10.0.0.0/8": NH1}, {}), "switch-1")
    with pytest.raises(ValueError):
        render_commands(plan({"10.0.0.0/8": NH1}, {}), SWITCH, chunk=0)


def _exabgp_parse(line: str) -> list[tuple[str, str, str, str]]:
    """(action, afi, prefix, next-hop) per NLRI, as ExaBGP 5's API parser reads ``line``."""
    from exabgp.configuration.configuration import Configuration
    from exabgp.environment import getenv
    from exabgp.logger import log
    from exabgp.reactor.api.command.limit import extract_neighbors

    log.init(getenv())
    log.silence()
    descriptions, command = extract_neighbors(line)
    assert descriptions == [[f"neighbor {SWITCH}"]]
    action, rest = command.split(" ", 1)
    configuration: Any = Configuration([])
    configuration.static.clear()
    assert configuration.partial("static", rest)
    configuration.scope.to_context()
    changes = configuration.scope.pop_routes()
    return [(action, str(c.nlri.afi), c.nlri.cidr.prefix(), str(c.nlri.nexthop)) for c in changes]


def test_exabgp_parses_our_lines_as_intended() -> None:
    installed = {"198.51.100.0/24": NH1, "2001:db8:9::/48": NH6}
    desired = {"203.0.113.0/24": NH2, "192.0.2.0/25": NH1, "2001:db8:1::/48": NH6}
    parsed = [
        row for line in render_commands(plan(desired, installed), SWITCH) for row in _exabgp_parse(line)
    ]
    assert parsed == [
        ("withdraw", "ipv4", "198.51.100.0/24", "no-nexthop"),
        ("withdraw", "ipv6", "2001:db8:9::/48", "no-nexthop"),
        ("announce", "ipv4", "192.0.2.0/25", NH1),
        ("announce", "ipv4", "203.0.113.0/24", NH2),
        ("announce", "ipv6", "2001:db8:1::/48", NH6),
    ]
