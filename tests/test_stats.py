"""One statistics module: Student-t intervals, None (not NaN) where undefined, bars clipped."""

from __future__ import annotations

import numpy as np
import pytest

from softorder.stats import error_bars, fmt_p, fmt_pm, mean_ci95, paired_test


def test_mean_ci95_is_student_t_and_none_for_one_value() -> None:
    mean, half = mean_ci95([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2) and half == pytest.approx(4.302653 * 0.1 / np.sqrt(3), rel=1e-5)
    assert mean_ci95([0.25]) == (0.25, None)
    assert fmt_pm(0.25, None, 100) == "25.00 ± n/a"


def test_paired_test_is_none_where_undefined() -> None:
    one = paired_test([0.1], [0.2])
    assert one["p_value"] is None and one["wins"] == 1
    same_shift = paired_test([0.1, 0.2], [0.2, 0.3])
    assert same_shift["p_value"] is None and fmt_p(same_shift["p_value"]) == "n/a"
    assert paired_test([0.1, 0.2], [0.1, 0.2])["p_value"] == 1.0
    tie = paired_test([0.1], [0.1])  # one trial says nothing, even when it ties (docs: null)
    assert tie["p_value"] is None and tie["p_wilcoxon"] is None and fmt_p(tie["p_value"]) == "n/a"


def test_error_bars_stay_inside_the_metric_range() -> None:
    means = np.array([0.01, 0.5, 0.99])
    bars = error_bars(means, [0.05, 0.1, 0.05])
    assert means - bars[0] == pytest.approx([0.0, 0.4, 0.94])  # not below 0
    assert means + bars[1] == pytest.approx([0.06, 0.6, 1.0])  # not above 1
    assert error_bars([0.3], [None]) == pytest.approx(np.zeros((2, 1)))
