"""Whether a control-loop iteration needs a selection at all.

While nothing can be programmed (the session is down, the switch's table still comes in, or this
node is the standby) a selection only feeds the dashboard; it runs again when one of its inputs
other than the traffic rates changed (requests, pins, caps and knobs, the RIB, the session, readiness), at
most
every ``VIEW_MIN_S`` (a burst of access-point requests wakes the loop per request, and a selection per
wake-up would hold the event loop, and so the API, for nothing that reaches the switch), and
otherwise every ``IDLE_SELECT_S`` so that the view does not go stale. Once the session is ready to
program, every iteration selects (rates move the TopN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from topfib.controller.selection.model import SelectionPolicy

# A view refresh while nothing can be programmed and no input changed: only the dashboard's preview of
# the desired FIB moves with the rates then (/v1/top reads them live), and a selection at a 30k cap costs
# 0.2-0.8 s of CPU, a tenth of the collector's budget at 100k samples/s when it ran every 30 s.
IDLE_SELECT_S = 300.0
VIEW_MIN_S = 1.0  # while nothing can be programmed, changed inputs are selected on at most this often


@dataclass(frozen=True, slots=True)
class SelectionInputs:
    """What a selection depends on besides the rates."""

    ready_to_program: bool
    policy: SelectionPolicy
    # the request mirror's version (RequestMirror.version): moves exactly when the wanted set does,
    # where a set of tens of thousands of requests cost milliseconds to build and compare
    requests: int
    pins: tuple[str, ...]
    rib_changes: int  # a running count of route updates from the switch (any may move a best path)
    session: tuple[bool, float | None] = (False, None)  # up, since when: a drop empties the RIB


class SelectionGate:
    """Remembers the inputs of the last selection; says when the next one can be skipped."""

    def __init__(self, idle_select_s: float = IDLE_SELECT_S, view_min_s: float = VIEW_MIN_S) -> None:
        self._idle_select_s = idle_select_s
        self._view_min_s = min(view_min_s, idle_select_s)
        self._last: SelectionInputs | None = None
        self._last_at = -math.inf

    def needed(self, inputs: SelectionInputs, now: float) -> bool:
        if inputs.ready_to_program:
            return True
        since = now - self._last_at
        if inputs != self._last:
            return since >= self._view_min_s
        return since >= self._idle_select_s

    def selected(self, inputs: SelectionInputs, now: float) -> None:
        self._last, self._last_at = inputs, now
