"""PrefixRates.selection_inputs: the top scores plus the incumbents, and the total of all."""

from __future__ import annotations

import numpy as np
import pytest

from topfib.collector.accounting.prefix_rates import PrefixRates
from topfib.controller.sim.simulate import PrefixIds

NAMES = [f"10.0.{i}.0/24" for i in range(50)]
IDS = PrefixIds(NAMES)


def rates_with_traffic() -> PrefixRates:
    """Prefix i carries (i + 1) kB, except 7 and 8 which tie; prefix 49 has none."""
    rates = PrefixRates(30.0, 3600.0)
    nbytes = np.arange(1, 50, dtype=np.float64) * 1000.0
    nbytes[8] = nbytes[7]
    rates.add_batch("sw", IDS, np.arange(49), nbytes, np.ones(49), 10.0)
    return rates


def test_without_a_limit_it_is_scores_and_evidence_with_their_total() -> None:
    rates = rates_with_traffic()
    inputs = rates.selection_inputs("sw", 20.0)
    scores, evidence = rates.scores_and_evidence("sw", 20.0)
    assert inputs.scores == scores and list(inputs.evidence) == list(scores) and inputs.evidence == evidence
    assert inputs.total == pytest.approx(sum(scores.values()))
    assert len(scores) == 49 and NAMES[49] not in scores


def test_a_limit_keeps_the_top_scores_ties_and_incumbents_and_the_whole_total() -> None:
    rates = rates_with_traffic()
    full = rates.scores_and_evidence("sw", 20.0)[0]
    inputs = rates.selection_inputs("sw", 20.0, limit=5, keep={NAMES[2], NAMES[49], "192.0.2.0/24"})
    top5 = sorted(full, key=full.__getitem__, reverse=True)[:5]
    assert set(inputs.scores) == {*top5, NAMES[2]}  # no traffic, unknown: nothing to add
    assert all(inputs.scores[p] == full[p] for p in inputs.scores)
    assert list(inputs.scores) == [p for p in full if p in inputs.scores]  # slot order, as before
    assert list(inputs.evidence) == list(inputs.scores)
    assert inputs.total == pytest.approx(sum(full.values()))
    # a limit ending inside a tie keeps the whole tie
    tie = rates.selection_inputs("sw", 20.0, limit=41)  # the 41st highest is 7, tied with 8
    assert NAMES[7] in tie.scores and NAMES[8] in tie.scores and len(tie.scores) == 42


def test_unknown_switch_gives_nothing() -> None:
    inputs = PrefixRates().selection_inputs("nope", 1.0, limit=3, keep={"10.0.0.0/24"})
    assert (inputs.scores, inputs.evidence, inputs.total) == ({}, {}, 0.0)
