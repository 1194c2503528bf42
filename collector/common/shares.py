"""How concentrated traffic is: the share the top-k prefixes carry, k = 1, 2, … (one rule for the
dashboard's curve and ``topfib simulate``'s plot)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


def top_k_shares(values: Sequence[float] | npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Cumulative share of the total carried by the k largest of ``values``, for k = 1…(count of
    positive finite values); zero, negative and non-finite values are left out (empty: none left)."""
    array = np.asarray(values, dtype=np.float64)
    ranked = -np.sort(-array[np.isfinite(array) & (array > 0)])
    if not len(ranked):
        return ranked
    cumulative = np.cumsum(ranked)
    shares: npt.NDArray[np.float64] = np.minimum(1.0, cumulative / cumulative[-1])
    return shares
