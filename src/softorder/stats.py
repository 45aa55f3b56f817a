"""The statistics of comparisons over trials, used by ``compare``, the report and the plots.

* :func:`mean_ci95` — mean and the half-width of its 95% Student-t interval (None for one value:
  an interval needs two);
* :func:`error_bars` — that interval as asymmetric bars clipped to a metric's range (an error
  rate lives in [0, 1]);
* :func:`paired_test` — paired t-test and Wilcoxon signed-rank test of ``a - b`` over trials;
* :func:`fmt_pm` — "mean ± half" as text, with "n/a" when there is no interval.

Undefined values are None (JSON ``null``), never NaN: strict JSON parsers reject NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def mean_ci95(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and the half-width of its 95% Student-t confidence interval (None for one value)."""
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        raise ValueError("mean_ci95 needs at least one value")
    if a.size == 1:
        return float(a[0]), None
    from scipy import stats  # imported on use: it adds a second to every process start

    half = stats.t.ppf(0.975, a.size - 1) * a.std(ddof=1) / math.sqrt(a.size)
    return float(a.mean()), float(half)


def error_bars(
    means: Sequence[float], halves: Sequence[float | None], lo: float = 0.0, hi: float = 1.0
) -> np.ndarray:
    """``[2, n]`` distances below and above each mean for matplotlib's ``yerr``: the interval
    ``mean ± half`` clipped to ``[lo, hi]`` (no bar where ``half`` is None)."""
    m = np.asarray(means, dtype=float)
    h = np.asarray([0.0 if x is None else x for x in halves], dtype=float)
    return np.stack([m - np.clip(m - h, lo, hi), np.clip(m + h, lo, hi) - m])


def paired_test(a: Sequence[float], b: Sequence[float]) -> dict[str, float | int | str | None]:
    """Paired two-sided t-test of ``a - b`` over trials (and the Wilcoxon signed-rank p-value).
    A p-value that is undefined (one trial, tied or not, or every difference equal but not zero)
    is None; every difference zero over two or more trials is 1."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired test needs equal trial counts, got {x.size} and {y.size}")
    d = x - y
    out: dict[str, float | int | str | None] = {
        "mean_diff": float(d.mean()),
        "n": int(d.size),
        "test": "paired t",
        "wins": int((d < 0).sum()),
        "losses": int((d > 0).sum()),
    }
    if d.size < 2 or np.allclose(d, d[0]):  # one trial says nothing, even when it ties
        out["p_value"] = 1.0 if d.size > 1 and np.allclose(d, 0) else None
        out["p_wilcoxon"] = out["p_value"]
        return out
    from scipy import stats

    out["p_value"] = float(stats.ttest_rel(x, y).pvalue)
    try:
        out["p_wilcoxon"] = float(stats.wilcoxon(x, y).pvalue)
    except ValueError:
        out["p_wilcoxon"] = None
    return out


def fmt_pm(mean: float | None, half: float | None, scale: float = 1.0, digits: int = 2) -> str:
    """``"12.34 ± 0.56"``; ``"12.34 ± n/a"`` without an interval; ``""`` without a mean."""
    if mean is None:
        return ""
    ci = "n/a" if half is None or not math.isfinite(half) else f"{scale * half:.{digits}f}"
    return f"{scale * mean:.{digits}f} ± {ci}"


def fmt_p(p: float | None) -> str:
    return "n/a" if p is None or not math.isfinite(p) else f"{p:.3g}"
