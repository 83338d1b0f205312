"""numpy's arithmetic on the few-element arrays of one environment step, without numpy's Python wrappers.

``np.clip``, ``np.sum``, ``np.mean`` and ``np.linalg.norm`` spend a few microseconds each in Python
before they compute anything, which on a 2-D point maze is more than the physics step. These helpers
call the ufuncs and reductions those functions end in, so every result is the same number, bit for
bit (tests/test_env_arithmetic.py checks them against the numpy functions).
"""

from __future__ import annotations

import math

import numpy as np

_clip = np._core.umath.clip  # type: ignore[attr-defined]  # the ufunc behind np.clip (numpy >= 2)


def clip(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``np.clip(values, low, high)`` (NaN stays NaN)."""
    return _clip(values, low, high)


def clip_into(out: np.ndarray, values, low: float, high: float) -> None:
    """``out[:] = np.clip(values, low, high)`` where ``out``'s dtype holds every value of ``values``
    exactly (float32 or float64 into float64): the values are copied, then clipped in place, which is
    several times cheaper than a clip that casts. ``values`` may be ``out`` itself."""
    out[...] = values
    _clip(out, low, high, out=out)


def clipped_float64(values, low: float, high: float) -> np.ndarray:
    """``np.clip(np.asarray(values, dtype=np.float64), low, high)`` as a new array (via :func:`clip_into`)."""
    out = np.empty(np.shape(values))
    clip_into(out, values, low, high)
    return out


def total(values: np.ndarray) -> float:
    """``float(np.sum(values))`` of a 1-D array (the same pairwise reduction)."""
    return float(np.add.reduce(values))


def mean(values: np.ndarray) -> float:
    """``float(np.mean(values))`` of a 1-D float64 array (its sum divided by its size, as numpy does)."""
    return float(np.add.reduce(values)) / values.size


def norm(vector: np.ndarray) -> float:
    """``float(np.linalg.norm(vector))`` of a 1-D float64 vector: numpy's sqrt(v . v)."""
    return math.sqrt(vector.dot(vector))
