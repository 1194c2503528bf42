"""ExaBGP API command text: the lines that carry a plan's steps, and the session's housekeeping lines.

A plan's steps (:mod:`topfib.controller.program.plan`) become ExaBGP 5 API lines (checked against
its parser, ``exabgp.configuration.announce``) in which every prefix names its family, as
statements of ExaBGP's ``ipv4``/``ipv6`` section:

* ``neighbor IP announce ipv4 unicast P1 next-hop NH ; unicast P2 next-hop NH …`` (``ipv6`` alike);
* ``neighbor IP withdraw ipv4 unicast P1 ; unicast P2 …`` — a withdraw is keyed by family and NLRI.

The shorter ``announce attributes next-hop NH nlri P1 P2 …`` takes the AFI *and SAFI* of the whole
line from its last prefix: a last prefix in 224.0.0.0/4 made every prefix on it ipv4/multicast,
which the session does not carry, so ExaBGP dropped them all and still acked ``done``. ExaBGP
parses a line whole before placing any of it: ``error`` means none of its prefixes was placed.
Lines are chunked (1,000 prefixes by default: at most ~105 KB, far below ExaBGP's 1 MiB limit);
with ``chunk=1`` each ack belongs to one prefix. Measured in the lab (bench.bench_command_form,
10k routes): these lines cost ExaBGP 1.1–1.25× the time and CPU of the ``attributes`` form, one
prefix per line 2.4–3.1×.
"""

from __future__ import annotations

from topfib.collector.common.prefixes import split_prefix
from topfib.controller.addresses import parse_ip
from topfib.controller.program.plan import Plan, Step

DEFAULT_CHUNK = 1000
_FAMILY_NAMES = {4: "ipv4", 6: "ipv6"}


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
    head = f"{_neighbor(neighbor)} {step.action} {family} "
    next_hop = parse_ip(step.next_hop or "", allow_scope=False) if step.action == "announce" else None
    tail = f" next-hop {next_hop}" if next_hop is not None else ""
    for prefix in step.prefixes:
        # every token is re-validated: a stray space or newline would be a different command
        prefix_family, _, length = split_prefix(prefix)
        if prefix_family != step.family:
            raise ValueError(f"prefix {prefix!r} is not {family}")
        if length == 0 and step.action == "announce":  # the last line of defence (the RIB refuses /0)
            raise ValueError(f"{prefix}: a default route is never announced")
    rendered = []
    for start in range(0, len(step.prefixes), chunk):
        prefixes = step.prefixes[start : start + chunk]
        rendered.append((prefixes, head + " ; ".join(f"unicast {prefix}{tail}" for prefix in prefixes)))
    return rendered


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
