"""ExaBGP API command text: the lines that carry a plan's steps, and the session's housekeeping lines.

A plan's steps (:mod:`topfib.controller.program.plan`) become ExaBGP 5 API lines (checked against
its parser, ``exabgp.configuration.static``), one set of attributes and many prefixes a line:

* ``neighbor IP announce attributes next-hop NH nlri P1 P2 … Pn``;
* ``neighbor IP withdraw attributes nlri P1 P2 … Pn`` — a withdraw is keyed by family and NLRI.

ExaBGP takes the AFI *and SAFI* of such a line from its last prefix: IPv4 multicast when that
prefix's first octet is 224–239 (then every prefix on it would be ipv4/multicast, which the session
does not carry: ExaBGP dropped them all and still acked ``done``). So the last prefix of a line is
always one outside that range, and a line with no such prefix names the family of each prefix
instead, as a statement of ExaBGP's ``ipv4``/``ipv6`` section:
``neighbor IP announce ipv4 unicast P1 next-hop NH ; unicast P2 next-hop NH …``. ExaBGP parses a
line whole before placing any of it: ``error`` means none of its prefixes was placed. Lines are
chunked (1,000 prefixes by default: at most ~45 KB, far below ExaBGP's 1 MiB limit); with
``chunk=1`` each ack belongs to one prefix. Measured in the lab (bench.bench_command_form, 10k
routes, ExaBGP's CPU): the per-prefix statements cost 1.9× the ``attributes`` form to announce and
1.3× to withdraw, one prefix per line 4.0× and 2.6×.
"""

from __future__ import annotations

from topfib.collector.common.prefixes import split_prefix
from topfib.controller.addresses import parse_ip
from topfib.controller.program.plan import Plan, Step

DEFAULT_CHUNK = 1000
_FAMILY_NAMES = {4: "ipv4", 6: "ipv6"}
_IPV4_MULTICAST_FIRST_OCTETS = range(224, 240)  # ExaBGP's rule (IP.tosafi): the SAFI of a line


def _neighbor(neighbor: str) -> str:
    # no scope id: ipaddress takes any text after "%" (a newline too) and prints it back
    return f"neighbor {parse_ip(neighbor, allow_scope=False)}"


def render_step(step: Step, neighbor: str, chunk: int = DEFAULT_CHUNK) -> list[tuple[tuple[str, ...], str]]:
    """(its prefixes, ExaBGP API line) for each line of ``step``, addressed to ``neighbor``.

    Raises ``ValueError`` (``PrefixError`` is one) on a malformed neighbor, next-hop or prefix,
    on a prefix of another family than the step's (ExaBGP would take it as given), and on the
    announce of a default route.
    """
    if chunk < 1:
        raise ValueError("chunk must be >= 1")
    family = _FAMILY_NAMES.get(step.family)
    if family is None:
        raise ValueError(f"unknown address family {step.family!r}")
    next_hop = parse_ip(step.next_hop or "", allow_scope=False) if step.action == "announce" else None
    tail = f" next-hop {next_hop}" if next_hop is not None else ""
    for prefix in step.prefixes:
        # every token is re-validated: a stray space or newline would be a different command
        prefix_family, _, length = split_prefix(prefix)
        if prefix_family != step.family:
            raise ValueError(f"prefix {prefix!r} is not {family}")
        if length == 0 and step.action == "announce":  # the last line of defence (the RIB refuses /0)
            raise ValueError(f"{prefix}: a default route is never announced")
    head = f"{_neighbor(neighbor)} {step.action} "
    shared = f"attributes{tail} nlri "
    rendered = []
    for start in range(0, len(step.prefixes), chunk):
        prefixes = step.prefixes[start : start + chunk]
        last = _unicast_last(prefixes)
        if last is None:
            line = f"{head}{family} " + " ; ".join(f"unicast {prefix}{tail}" for prefix in prefixes)
        else:
            ordered = (*prefixes[:last], *prefixes[last + 1 :], prefixes[last])
            line = head + shared + " ".join(ordered)
        rendered.append((prefixes, line))
    return rendered


def _unicast_last(prefixes: tuple[str, ...]) -> int | None:
    """Index of a prefix that, last on an ``attributes`` line, makes ExaBGP read the line as unicast
    (the last one when it can: lines keep the plan's order); None when there is none."""
    for index in range(len(prefixes) - 1, -1, -1):
        prefix = prefixes[index]
        if ":" in prefix or int(prefix.split(".", 1)[0]) not in _IPV4_MULTICAST_FIRST_OCTETS:
            return index
    return None


def render_commands(plan: Plan, neighbor: str, chunk: int = DEFAULT_CHUNK) -> list[str]:
    """ExaBGP API lines for ``plan`` in order (see :func:`render_step`)."""
    return [line for step in plan.steps for _, line in render_step(step, neighbor, chunk)]


def clear_adj_rib_out_command(neighbor: str) -> str:
    """The ExaBGP API line that makes it forget (and, on a live session, withdraw) every route it
    announced to ``neighbor``: without it ExaBGP replays them when the session comes back."""
    return f"{_neighbor(neighbor)} clear adj-rib out"


# The families of topfib's session with a switch (exabgp/topfib.conf.template configures these).
SESSION_FAMILIES = ("ipv4 unicast", "ipv6 unicast")


def end_of_rib_commands(neighbor: str) -> list[str]:
    """The ExaBGP API lines sending End-of-RIB to ``neighbor`` for both families topfib programs
    (with graceful restart the switch then drops the stale routes not announced again)."""
    head = _neighbor(neighbor)
    return [f"{head} announce eor {family}" for family in SESSION_FAMILIES]
