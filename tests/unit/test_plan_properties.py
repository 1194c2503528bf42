"""Planning properties over random installed/desired FIBs."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_plan import _exabgp_parse
from topfib.controller.exabgp.commands import render_commands, render_step
from topfib.controller.program.plan import plan

PREFIXES = [f"10.0.{i}.0/24" for i in range(12)] + [f"10.1.0.0/{n}" for n in (16, 20)] + ["2001:db8::/32"]
HOPS = ["192.0.2.1", "192.0.2.2", "2001:db8::1"]
fibs = st.dictionaries(st.sampled_from(PREFIXES), st.sampled_from(HOPS), max_size=len(PREFIXES))


@given(fibs, fibs)
@settings(max_examples=80, deadline=None)
def test_steps_reach_desired_without_ever_holding_more_than_either_end(
    desired: dict[str, str], installed: dict[str, str]
) -> None:
    result = plan(desired, installed)
    states = list(result.states(installed))
    assert (states[-1] if states else installed) == desired
    bound = max(len(installed), len(desired))
    for family in (4, 6):
        fam_bound = max(
            sum(1 for p in installed if (":" in p) == (family == 6)),
            sum(1 for p in desired if (":" in p) == (family == 6)),
        )
        for state in states:
            assert sum(1 for p in state if (":" in p) == (family == 6)) <= fam_bound
    for state in states:
        assert len(state) <= bound
    actions = [s.action for s in result.steps]
    assert actions == sorted(actions, key=lambda a: a != "withdraw")  # all withdraws first


@given(fibs, fibs)
@settings(max_examples=80, deadline=None)
def test_each_prefix_changes_once_and_a_next_hop_change_is_one_announce(
    desired: dict[str, str], installed: dict[str, str]
) -> None:
    result = plan(desired, installed)
    touched = [p for step in result.steps for p in step.prefixes]
    assert len(touched) == len(set(touched))
    expected = {p for p in installed if p not in desired} | {
        p for p, h in desired.items() if installed.get(p) != h
    }
    assert set(touched) == expected
    for step in result.steps:
        assert all((":" in p) == (step.family == 6) for p in step.prefixes)
        if step.action == "announce":
            assert all(desired[p] == step.next_hop for p in step.prefixes)
    lines = render_commands(result, "10.0.0.2", chunk=3)
    parsed = [row for line in lines for row in _exabgp_parse(line)]
    assert [row[3] for row in parsed] == touched  # no 224/4 prefix here: lines keep the plan's order
    for action, afi, safi, prefix, _ in parsed:  # every prefix is the unicast of its own family
        assert (afi, safi) == ("ipv6" if ":" in prefix else "ipv4", "unicast")
        assert action == ("withdraw" if prefix in installed and prefix not in desired else "announce")


# IPv4 prefixes with many in 224.0.0.0/4 (ExaBGP reads a first octet 224–239 as multicast) and IPv6
def _v4(octet: int, second: int, length: int) -> str:
    return f"{octet}.{second if length >= 16 else 0}.0.0/{length}"


v4_prefixes = st.builds(_v4, st.sampled_from([10, 100, 198, 223, 224, 230, 239, 240]),
                        st.integers(0, 255), st.sampled_from([8, 16, 24]))
v6_prefixes = st.builds(lambda block: str(ipaddress.IPv6Network((0x20010DB8 << 96 | block << 80, 48))),
                        st.integers(0, 0xFFFF))


@given(st.sets(v4_prefixes, min_size=1, max_size=12), st.sets(v6_prefixes, max_size=4),
       st.integers(1, 5), st.sampled_from(["announce", "withdraw"]))
@settings(max_examples=60, deadline=None)
def test_exabgp_reads_every_rendered_prefix_as_the_unicast_of_its_family(
    v4: set[str], v6: set[str], chunk: int, action: str
) -> None:
    """Whatever the mix and chunking, ExaBGP's own parser reads each line back as exactly its
    prefixes, every one as the unicast of its own family: no 224/4 prefix changes a line."""
    fib = {prefix: "192.0.2.1" for prefix in v4} | {prefix: "2001:db8::1" for prefix in v6}
    result = plan(fib, {}) if action == "announce" else plan({}, fib)
    lines = [entry for step in result.steps for entry in render_step(step, "10.0.0.2", chunk)]
    for prefixes, line in lines:
        parsed = _exabgp_parse(line)
        assert sorted(row[3] for row in parsed) == sorted(prefixes)  # a 224/4 prefix may move up
        for row in parsed:
            assert row[:3] == (action, "ipv6" if ":" in row[3] else "ipv4", "unicast")
    assert sorted(p for prefixes, _ in lines for p in prefixes) == sorted(fib)
