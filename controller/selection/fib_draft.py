"""The FIB a selection is building: routes chosen so far and per-table usage under the caps."""

from __future__ import annotations

from collections.abc import Mapping

from topfib.controller.selection.model import Reason, RibView, SelectedRoute, SelectionPolicy, new_route
from topfib.controller.selection.unit_cache import UnitCache


class FibDraft:
    """The selection being built: chosen routes and per-table usage under the caps."""

    def __init__(
        self,
        rib: RibView,
        policy: SelectionPolicy,
        scores: Mapping[str, float],
        incumbents: Mapping[str, SelectedRoute],
        now: float,
        cache: UnitCache,
    ) -> None:
        self.rib = rib
        self.policy = policy
        self.scores = scores
        self.incumbents = incumbents
        self.now = now
        self.cache = cache
        self.caps = policy.caps()
        self.usage = dict.fromkeys(self.caps, 0)
        self.full_tables = {table for table, cap in self.caps.items() if cap <= 0}
        self.routes: dict[str, SelectedRoute] = {}
        self.next_hop_of = cache.next_hop

    def all_full(self) -> bool:
        return len(self.full_tables) == len(self.caps)

    def unit(self, root: str, next_hop: str) -> Mapping[str, str]:
        return self.cache.unit(root, next_hop) or {root: next_hop}

    def cost(self, unit: Mapping[str, str]) -> dict[str, int]:
        cost: dict[str, int] = {}
        for prefix in unit:
            if prefix not in self.routes:
                table = self.policy.table_of(prefix)
                cost[table] = cost.get(table, 0) + 1
        return cost

    def shortfall(self, cost: Mapping[str, int]) -> str:
        """Why ``cost`` does not fit, or "" when it does."""
        for table, needed in sorted(cost.items()):
            free = self.caps[table] - self.usage[table]
            if needed > free:
                return f"{table} table full: needs {needed} route(s), {free} of {self.caps[table]} free"
        return ""

    def install_one(self, prefix: str, next_hop: str, reason: Reason, table: str) -> None:
        """Install a prefix not yet in ``routes`` whose table has room."""
        incumbent = self.incumbents.get(prefix)
        self.routes[prefix] = new_route(
            prefix,
            next_hop,
            reason,
            incumbent.since if incumbent is not None else self.now,
            float(self.scores.get(prefix, 0.0)),
        )
        self.usage[table] += 1
        if self.usage[table] >= self.caps[table]:
            self.full_tables.add(table)

    def install(self, unit: Mapping[str, str], root: str, reason: Reason) -> None:
        for prefix, next_hop in unit.items():
            if prefix not in self.routes:
                member_reason: Reason = reason if prefix == root else "dependency"
                self.install_one(prefix, next_hop, member_reason, self.policy.table_of(prefix))

    def try_install(self, root: str, reason: Reason) -> tuple[bool, str]:
        """Install ``root``'s unit if it has a live path and fits: (installed, why not)."""
        if root in self.routes:
            return True, ""
        next_hop = self.next_hop_of(root)
        if next_hop is None:
            return False, "no live path"
        unit = self.unit(root, next_hop)
        why_not = self.shortfall(self.cost(unit))
        if why_not:
            return False, why_not
        self.install(unit, root, reason)
        return True, ""
