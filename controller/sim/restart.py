"""A warm restart inside ``topfib simulate`` (``--restart-at S``): what churn a restart costs.

At the restart the simulated controller goes through what ``topfib run`` does: its rate state is
snapshotted (the top rows per family,
:meth:`topfib.collector.accounting.prefix_rates.PrefixRates.export_rows`) with
each cap's desired FIB, the snapshot goes through the real format (:mod:`topfib.controller.state.warm_state`,
encoded and decoded), and a fresh accounting is restored from it decayed for ``SNAPSHOT_AGE_S``
(the average age of a snapshot taken every ``state.snapshot_interval_s`` = 60 s: the traffic
of that long is lost, as in a crash right before the next snapshot would have been written); the restored
FIB is the incumbents of the next selection. The FIB's changes from then on are the churn a warm
restart costs, against the cold start's profile (the hours from the simulation's start).
"""

from __future__ import annotations

from collections.abc import Mapping

from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.controller.selection.model import SelectedRoute
from topfib.controller.state.warm_state import WarmState, decode

SNAPSHOT_AGE_S = 30.0  # taken every 60 s: half an interval old on average at a crash
ROWS_PER_SLOT = 4  # as topfib.controller.service.warm_keeper keeps them


def warm_restart(
    rates: PrefixRates, switch: str, now: float, fibs: list[Mapping[str, SelectedRoute]], cap: int,
) -> tuple[PrefixRates, list[dict[str, SelectedRoute]]]:
    """A new accounting restored from a snapshot of ``rates``, and each FIB carried through it."""
    observed_s, rows = rates.export_rows(switch, now, (ROWS_PER_SLOT * cap,) * 2)
    halves = (rates.fast_half_life_s, rates.slow_half_life_s)
    carried = []
    restored_rows = rows
    for fib in fibs:
        snapshot = WarmState(switch, 0.0, observed_s, *halves, rows=rows, desired=dict(fib))
        decoded = decode(snapshot.encode(), switch, halves)
        restored_rows = decoded.rows
        carried.append(decoded.desired)
    fresh = PrefixRates(rates.fast_half_life_s, rates.slow_half_life_s, rates.fast_min_samples)
    fresh.restore_rows(switch, now, restored_rows, SNAPSHOT_AGE_S, observed_s)
    return fresh, carried


def profile_line(cap: int, hourly_changes: tuple[int, ...], restart_at_s: float) -> str:
    """The hours after the restart next to the steady hours before it, as % of ``cap``."""
    hour = int(restart_at_s // 3600.0)

    def pct(values: tuple[int, ...]) -> str:
        return " ".join(f"{100.0 * changes / cap:.2f}" for changes in values) or "-"

    return (f"cap {cap}: warm restart in hour {hour + 1}: changes per hour from it, % of cap: "
            f"{pct(hourly_changes[hour:])}; the two hours before it: "
            f"{pct(hourly_changes[max(0, hour - 2):hour])}")
