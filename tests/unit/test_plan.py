"""Planning: exact ExaBGP command lines (golden), checked again with ExaBGP's own parser."""

from __future__ import annotations

from typing import Any

import pytest

from topfib.collector.common.prefixes import PrefixError
from topfib.collector.rib.paths import BgpPath
from topfib.controller.exabgp.commands import render_commands, render_step
from topfib.controller.program.plan import Plan, Step, plan
from topfib.controller.selection.static_rib import StaticRib

SWITCH = "10.0.0.2"
NH1, NH2 = "192.0.2.1", "192.0.2.2"
NH6 = "2001:db8::1"


def test_golden_withdraws_first_then_announces_one_line_per_next_hop() -> None:
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
        "neighbor 10.0.0.2 announce attributes next-hop 192.0.2.1 nlri 198.51.100.0/24 203.0.113.0/24",
    ]
    second = plan({"203.0.113.0/24": NH1}, {"198.51.100.0/24": NH1, "203.0.113.0/24": NH1})
    assert render_commands(second, SWITCH) == ["neighbor 10.0.0.2 withdraw attributes nlri 198.51.100.0/24"]


def test_golden_a_multicast_first_octet_never_changes_the_family_of_a_line() -> None:
    """Issue 15: a last prefix in 224.0.0.0/4 used to turn a batched line into ipv4/multicast: a
    prefix outside it goes last, and a line with none names the family of each prefix."""
    desired = {"10.0.0.0/8": NH1, "224.0.0.0/4": NH1}
    lines = render_commands(plan(desired, {}), SWITCH)
    assert lines == ["neighbor 10.0.0.2 announce attributes next-hop 192.0.2.1 nlri 224.0.0.0/4 10.0.0.0/8"]
    assert [row[1:4] for line in lines for row in _exabgp_parse(line)] == [
        ("ipv4", "unicast", "224.0.0.0/4"), ("ipv4", "unicast", "10.0.0.0/8")]
    withdraw = render_commands(plan({}, desired), SWITCH)
    assert withdraw == ["neighbor 10.0.0.2 withdraw attributes nlri 224.0.0.0/4 10.0.0.0/8"]
    assert [row[:4] for row in _exabgp_parse(withdraw[0])] == [
        ("withdraw", "ipv4", "unicast", "224.0.0.0/4"), ("withdraw", "ipv4", "unicast", "10.0.0.0/8")]
    only_multicast = render_commands(plan({"224.0.0.0/8": NH1, "239.1.0.0/16": NH1}, {}), SWITCH)
    assert only_multicast == ["neighbor 10.0.0.2 announce ipv4 unicast 224.0.0.0/8 next-hop 192.0.2.1"
                              " ; unicast 239.1.0.0/16 next-hop 192.0.2.1"]
    assert [row[1:4] for row in _exabgp_parse(only_multicast[0])] == [
        ("ipv4", "unicast", "224.0.0.0/8"), ("ipv4", "unicast", "239.1.0.0/16")]


def test_ipv6_neighbor_and_chunking() -> None:
    desired = {f"10.0.{i}.0/24": NH1 for i in range(5)}
    lines = render_commands(plan(desired, {}), "2001:db8::2", chunk=2)
    head = "neighbor 2001:db8::2 announce attributes next-hop 192.0.2.1 nlri"
    assert lines == [f"{head} 10.0.0.0/24 10.0.1.0/24", f"{head} 10.0.2.0/24 10.0.3.0/24",
                     f"{head} 10.0.4.0/24"]
    assert (
        len(render_commands(plan({f"10.{i // 256}.{i % 256}.0/24": NH1 for i in range(2500)}, {}), SWITCH))
        == 3
    )


def test_render_step_pairs_each_line_with_its_prefixes() -> None:
    step = Step("withdraw", 6, None, ("2001:db8::/48", "2001:db8:1::/48", "2001:db8:2::/48"))
    assert render_step(step, SWITCH, chunk=2) == [
        (("2001:db8::/48", "2001:db8:1::/48"),
         "neighbor 10.0.0.2 withdraw attributes nlri 2001:db8::/48 2001:db8:1::/48"),
        (("2001:db8:2::/48",), "neighbor 10.0.0.2 withdraw attributes nlri 2001:db8:2::/48"),
    ]


def test_nothing_to_do_is_an_empty_plan() -> None:
    same = {"10.0.0.0/8": NH1}
    assert not plan(same, same)
    assert render_commands(plan(same, same), SWITCH) == []


def test_a_prefix_whose_last_path_vanished_is_withdrawn_and_a_changed_best_is_followed() -> None:
    rib = StaticRib({"10.1.0.0/16": [BgpPath(next_hop=NH2, peer=NH2)]})
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
    rib = StaticRib({"10.1.0.0/16": [BgpPath(next_hop="0.0.0.0", peer="file")],
                     "10.2.0.0/16": [BgpPath(next_hop=NH2, peer=NH2)]})
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


@pytest.mark.parametrize(("next_hop", "neighbor"), [
    ("fe80::1%x\nneighbor 192.0.2.254 teardown 2", "2001:db8::1"),  # ipaddress takes any scope id text
    ("fe80::1%eth0", "2001:db8::1"),  # even a tidy one: ExaBGP cannot parse it
    ("2001:db8::9", "fe80::1%x ; teardown 2"),
])
def test_a_scoped_address_is_never_rendered(next_hop: str, neighbor: str) -> None:
    with pytest.raises(ValueError, match="scope"):
        render_commands(Plan((Step("announce", 6, next_hop, ("2001:db8:1::/48",)),)), neighbor)


def test_a_default_route_is_never_rendered_as_an_announce_but_may_be_withdrawn() -> None:
    for prefixes, next_hop, family in ((("16.0.0.0/8", "0.0.0.0/0"), NH1, 4), (("::/0",), NH6, 6)):
        with pytest.raises(ValueError, match="default route"):
            render_commands(Plan((Step("announce", family, next_hop, prefixes),)), SWITCH)
        assert render_commands(Plan((Step("withdraw", family, None, prefixes),)), SWITCH)


def test_a_prefix_of_another_family_than_the_line_is_refused() -> None:
    # ExaBGP would parse "announce ipv4 unicast 2001:db8::/32" as an ipv4 route: never write it
    with pytest.raises(ValueError, match="not ipv4"):
        render_commands(Plan((Step("announce", 4, NH1, ("2001:db8::/32",)),)), SWITCH)
    with pytest.raises(ValueError, match="not ipv6"):
        render_commands(Plan((Step("announce", 6, NH6, ("10.0.0.0/8",)),)), SWITCH)
    with pytest.raises(ValueError, match="family"):
        render_commands(Plan((Step("withdraw", 5, None, ("10.0.0.0/8",)),)), SWITCH)


def _exabgp_parse(line: str) -> list[tuple[str, str, str, str, str]]:
    """(action, afi, safi, prefix, next-hop) per NLRI in line order, as ExaBGP 5's API reads
    ``line`` (the parsing of ``exabgp.reactor.api.API.api_attributes`` or ``api_announce_v4``/``_v6``)."""
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
    if rest.startswith("attributes "):  # the action is ExaBGP's command's, not the parser's
        assert configuration.partial("static", rest)
    else:
        section, rest = rest.split(" ", 1)
        assert section in ("ipv4", "ipv6")
        assert configuration.partial(section, rest, action)
    assert not configuration.scope.location()
    configuration.scope.to_context()
    changes = configuration.scope.pop_routes()
    return [(action, str(c.nlri.afi), str(c.nlri.safi), c.nlri.cidr.prefix(), str(c.nlri.nexthop))
            for c in changes]


def test_exabgp_parses_our_lines_as_intended() -> None:
    installed = {"198.51.100.0/24": NH1, "2001:db8:9::/48": NH6}
    desired = {"203.0.113.0/24": NH2, "192.0.2.0/25": NH1, "2001:db8:1::/48": NH6}
    parsed = [
        row for line in render_commands(plan(desired, installed), SWITCH) for row in _exabgp_parse(line)
    ]
    assert parsed == [
        ("withdraw", "ipv4", "unicast", "198.51.100.0/24", "no-nexthop"),
        ("withdraw", "ipv6", "unicast", "2001:db8:9::/48", "no-nexthop"),
        ("announce", "ipv4", "unicast", "192.0.2.0/25", NH1),
        ("announce", "ipv4", "unicast", "203.0.113.0/24", NH2),
        ("announce", "ipv6", "unicast", "2001:db8:1::/48", NH6),
    ]


def test_exabgp_places_nothing_of_a_line_with_one_bad_statement() -> None:
    """What the controller relies on when it resends a refused line's prefixes one per line."""
    from exabgp.configuration.configuration import Configuration

    configuration: Any = Configuration([])
    configuration.static.clear()
    bad = "unicast 10.0.0.0/8 next-hop 192.0.2.1 ; unicast 10.0.0.1/33 next-hop 192.0.2.1"
    assert not configuration.partial("ipv4", bad, "announce")
