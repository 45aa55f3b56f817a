"""The tables of a ``softorder transfer`` folder (Sec. 6): what its ``results.md`` and
``softorder report`` both show, built from its ``results.json`` summary."""

from __future__ import annotations

from typing import Any

from softorder.stats import fmt_p, fmt_pm

#: What each mode of a transfer adapts (the rows of the tables).
LABELS = {
    "soft": "frozen soft-trained layers + new S + decoders",
    "parallel": "frozen parallel core + new decoders",
    "scratch": "each new task alone from scratch",
}


def transfer_tables(summary: dict[str, Any]) -> list[tuple[list[str], list[list[str]]]]:
    """The two tables of ``softorder transfer`` (header and rows): each mode's mean test error % ± 95% CI
    per shots, and the paired tests; ``results.md`` and ``softorder report`` both show these."""
    labels = list(summary["shots"])
    errors = [["mean test error % (± 95% CI)", *(f"shots {k}" for k in labels)]]
    for m, text in LABELS.items():
        pairs = (summary["shots"][k]["mean_ci95"][m] for k in labels)
        errors.append([f"{text} (`{m}`)", *(fmt_pm(mean, half, 100, 1) for mean, half in pairs)])
    tests = [["paired test: mean difference pp (p, wins/losses)", *labels]]
    for name in summary["shots"][labels[0]]["tests"]:
        cells = []
        for k in labels:
            t = summary["shots"][k]["tests"][name]
            cells.append(f"{100 * t['mean_diff']:+.1f} (p {fmt_p(t['p_value'])}, {t['wins']}/{t['losses']})")
        tests.append([name, *cells])
    return [(rows[0], rows[1:]) for rows in (errors, tests)]


TRANSFER_NOTE = ("Mean test error on the new tasks; the 95% CI is over the sources (each the mean over the "
                 "seeds) for soft and parallel, over the seeds for scratch. The tests over the seeds hold "
                 "these sources fixed (they say nothing of other source runs); only the test over the "
                 "sources does.")
