"""Scaling volume and spread on chosen bars: the liquidity side of a stress, shared by every transform.

Flash crashes widen spreads and swell volume, a liquidity drop thins volume and widens spreads, mixed
scenarios combine them: all are multiplications at some rows, flagged as stressed. Keeping that in one
place keeps the flagging rule the same everywhere (a row is stressed when a factor moves it).
"""

from __future__ import annotations

import numpy as np


def scale_volume_spread(
    arrays: dict[str, np.ndarray],
    rows: np.ndarray,
    volume_factor: float | np.ndarray = 1.0,
    spread_factor: float | np.ndarray = 1.0,
) -> None:
    """Multiply ``volume`` and ``spread_bps`` at ``rows`` in place; flag moved rows in ``stressed``.

    ``arrays`` holds fresh copies (``BarArrays.copy_arrays("volume", "spread_bps", "stressed")``); an
    array that is not there is not touched, so a caller scaling only the spread copies only the spread.
    Factors are scalars or broadcast against ``rows``; they must be >= 0 to keep volume and spread >= 0.
    """
    rows = np.asarray(rows)
    moved = np.zeros(rows.shape, dtype=bool)
    for name, factor in (("volume", volume_factor), ("spread_bps", spread_factor)):
        factor = np.broadcast_to(np.asarray(factor, dtype=np.float64), rows.shape)
        changes = factor != 1.0
        if name in arrays and changes.any():
            arrays[name][rows] *= factor
            moved |= changes
    if "stressed" in arrays:
        arrays["stressed"][rows[moved]] = True
