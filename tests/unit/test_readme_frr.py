"""README's FRR configuration is the one the FRR lab runs (tests/integration/frr_lab.py): every
line README shows is in the lab's bgpd.conf, in the same block, and every line of the lab's that
README does not show is one of the lab's own (logging, timers, the peers' sessions)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.integration.frr_lab import frr_config
from tests.integration.lab import CTL_V4, NEXT_HOPS_V4, NEXT_HOPS_V6, PEER_AS, SW_V4

README = Path(__file__).resolve().parents[2] / "README.md"
LIMIT = 40
PEERS = {"ipv4": NEXT_HOPS_V4, "ipv6": NEXT_HOPS_V6}
# Lines of the lab's configuration README leaves out, and why: they are the lab's, not advice.
LAB_ONLY = [
    r"log file \S+ informational",  # where the lab keeps FRR's log
    r"!|exit|exit-address-family",  # block ends (README's indentation shows them)
    rf"bgp router-id {re.escape(SW_V4)}",  # the switch's own, site-specific
    r"no bgp default ipv4-unicast",  # families activated explicitly
    r"neighbor \S+ timers connect 1",  # a quick reconnect for the flap tests
    r"coalesce-time 100",  # updates 0.1 s after a session comes up, not 1 s: the tests' time
    r"neighbor \S+ remote-as 645\d\d",  # the peers' sessions: the site's own
    r"neighbor (?:192\.168\.50\.1[123]|fd50::1[123]) activate",
]


def _readme_block() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("- **SONiC / FRR / Cumulus Linux (FRR)**"):]
    block = section[section.index("```") + 3:]
    return [line.strip() for line in block[:block.index("```")].splitlines() if line.strip()]


def _sections(lines: list[str]) -> dict[str, list[str]]:
    """Lines by block: "top" (route-maps), "bgp" (router bgp), "ipv4"/"ipv6" (address families)."""
    sections: dict[str, list[str]] = {"top": [], "bgp": [], "ipv4": [], "ipv6": []}
    current = "top"
    for line in lines:
        if line.startswith("router bgp"):
            current = "bgp"
        elif line.startswith("address-family"):
            current = line.split()[1]
            continue
        elif line == "exit-address-family":
            current = "bgp"
            continue
        sections[current].append(line)
    return sections


def _lab_lines() -> list[str]:
    return [line.strip() for line in frr_config(LIMIT, "/var/log/frr/bgpd.log").splitlines() if line.strip()]


def _readme_as_lab() -> dict[str, list[str]]:
    """README's block with its placeholders filled in as the lab's values, both families."""
    readme = _readme_block()
    assert "! the same for address-family ipv6 unicast" in readme
    lines = [line for line in readme if not line.startswith("!")]
    sections = _sections(lines)
    sections["ipv6"] = list(sections["ipv4"])
    filled: dict[str, list[str]] = {}
    for name, block in sections.items():
        out: list[str] = []
        for line in block:
            line = line.replace("10.0.0.1", CTL_V4).replace("router bgp 65000", f"router bgp {PEER_AS}")
            line = line.replace("maximum-prefix N ", f"maximum-prefix {LIMIT} ")
            if "PEER" in line.split():
                family = name if name in PEERS else "ipv4"
                out += [" ".join(hop if word == "PEER" else word for word in line.split())
                        for hop in PEERS[family]]
            else:
                out.append(line)
        filled[name] = out
    return filled


def test_every_line_of_readmes_frr_config_is_in_the_labs_in_the_same_block() -> None:
    lab = _sections(_lab_lines())
    for name, lines in _readme_as_lab().items():
        missing = [line for line in lines if line not in lab[name]]
        assert not missing, f"README's FRR config ({name}) has lines the lab does not run: {missing}"


def test_the_lab_runs_nothing_readme_does_not_show_but_its_own_lines() -> None:
    shown = {line for lines in _readme_as_lab().values() for line in lines}
    shown |= {"address-family ipv4 unicast", "address-family ipv6 unicast"}  # README's, both
    extra = [line for line in _lab_lines()
             if line not in shown and not any(re.fullmatch(p, line) for p in LAB_ONLY)]
    assert not extra, f"the FRR lab runs lines README's FRR config does not show: {extra}"


def test_what_readme_says_not_to_set_the_lab_does_not_set() -> None:
    config = frr_config(LIMIT, "/var/log/frr/bgpd.log")
    readme = README.read_text(encoding="utf-8")
    for advice, setting in (("Do **not** set `next-hop-self`", "next-hop-self"),
                            ("Do **not** set `bgp suppress-fib-pending`", "suppress-fib-pending")):
        assert advice in readme
        assert setting not in config
    assert "warning-only" in config  # README: a warning, not a safety net
