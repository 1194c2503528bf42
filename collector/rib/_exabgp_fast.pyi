"""Type stub for the C fast path (collector/rib/_exabgp_fast.c); see collector/rib/exabgp_json.py."""

from collections.abc import Callable
from typing import Any, final

from topfib.collector.rib.events import Event

@final
class Scanner:
    def __init__(
        self,
        route_update: type[Any],
        path: type[Any],
        attributes: type[tuple[Any, ...]],
        attribute_cache: dict[Any, Any],
        path_cache: dict[Any, Any],
        strings: dict[str, str],
        known_prefix: Callable[[str], bool] | None,
        split_canonical: Callable[[str], tuple[str, tuple[int, int, int]] | None],
        max_cached: int,
    ) -> None: ...
    def scan(self, line: str | bytes, /) -> list[Event] | None: ...
