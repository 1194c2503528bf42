"""The followed-path RIB view: the dominant observed path while it is live, else the best path."""

from __future__ import annotations

from topfib.collector.rib.paths import BgpPath
from topfib.collector.rib.rib import Rib
from topfib.controller.program.plan import plan
from topfib.controller.selection.model import SelectionPolicy
from topfib.controller.selection.observed_paths import ObservedPathRib
from topfib.controller.selection.select import select


def path(next_hop: str, as_path: tuple[int, ...], path_id: int = 1) -> BgpPath:
    return BgpPath(next_hop=next_hop, as_path=as_path, peer="192.0.2.254", path_id=path_id)


def two_path_rib() -> Rib:
    rib = Rib()
    # 192.0.2.1 is best (shorter AS path); 192.0.2.2 is the second path of the same prefix
    rib.announce("s", "198.51.100.0/24", path("192.0.2.1", (65001,)))
    rib.announce("s", "198.51.100.0/24", path("192.0.2.2", (65002, 65003), 2))
    rib.announce("s", "203.0.113.0/24", path("192.0.2.1", (65001,)))
    return rib


def test_best_is_the_followed_path_while_it_is_live() -> None:
    rib = two_path_rib()
    view = ObservedPathRib(rib, {"198.51.100.0/24": "192.0.2.2"})
    followed = view.best("198.51.100.0/24")
    assert followed is not None and followed.next_hop == "192.0.2.2"
    other = view.best("203.0.113.0/24")
    assert other is not None and other.next_hop == "192.0.2.1"
    rib.withdraw("s", "198.51.100.0/24", "192.0.2.254", 2)
    back = view.best("198.51.100.0/24")
    assert back is not None and back.next_hop == "192.0.2.1"


def test_a_next_hop_that_is_no_path_of_the_prefix_is_ignored() -> None:
    view = ObservedPathRib(two_path_rib(), {"203.0.113.0/24": "192.0.2.2"})
    best = view.best("203.0.113.0/24")
    assert best is not None and best.next_hop == "192.0.2.1"


def test_follow_reports_the_prefixes_whose_choice_changed() -> None:
    view = ObservedPathRib(two_path_rib(), {"198.51.100.0/24": "192.0.2.2", "203.0.113.0/24": "192.0.2.1"})
    changed = view.follow({"198.51.100.0/24": "192.0.2.2", "10.0.0.0/8": "192.0.2.9"})
    assert changed == {"203.0.113.0/24", "10.0.0.0/8"}


def test_selection_and_plan_install_the_followed_next_hop() -> None:
    view = ObservedPathRib(two_path_rib(), {"198.51.100.0/24": "192.0.2.2"})
    selection = select(
        scores={"198.51.100.0/24": 100.0, "203.0.113.0/24": 50.0}, rib=view,
        policy=SelectionPolicy(cap_ipv4=10, cap_ipv6=10), now=0.0,
    )
    desired = selection.desired()
    assert desired == {"198.51.100.0/24": "192.0.2.2", "203.0.113.0/24": "192.0.2.1"}
    steps = plan(desired, {"198.51.100.0/24": "192.0.2.1"}, rib=view).steps
    assert [(s.action, s.next_hop, s.prefixes) for s in steps] == [
        ("announce", "192.0.2.1", ("203.0.113.0/24",)),
        ("announce", "192.0.2.2", ("198.51.100.0/24",)),
    ]
