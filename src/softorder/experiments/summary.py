"""The summary of a comparison: mean ± 95% CI per method, per-task means, paired tests of soft
ordering against every other method (``results.json``), and the same as Markdown (``results.md``).
Statistics come from :mod:`softorder.stats`, as for the report and the plots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from softorder.nn.orderings import FOLLOW_UPS
from softorder.stats import fmt_p, fmt_pm, mean_ci95, paired_test
from softorder.train.config import Config


def summarise(
    cfg: Config,
    orderings: Sequence[str],
    trials: int,
    results: dict[tuple[str, int], dict[str, Any]],
    per_ordering: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    first = results[(orderings[0], 0)]
    methods: dict[str, Any] = {}
    for o in orderings:
        runs = [results[(o, k)] for k in range(trials)]
        errs = [r["mean_test_error"] for r in runs]
        losses = [r["mean_test_loss"] for r in runs]
        em, ec = mean_ci95(errs)
        lm, lc = mean_ci95(losses)
        n_tasks = len(runs[0]["test_error"])
        methods[o] = {
            "test_error_mean": em,
            "test_error_ci95": ec,
            "test_loss_mean": lm,
            "test_loss_ci95": lc,
            "trials": errs,
            "trial_losses": losses,
            "per_task_error_mean": [sum(r["test_error"][t] for r in runs) / trials for t in range(n_tasks)],
            "per_task_loss_mean": [sum(r["test_loss"][t] for r in runs) / trials for t in range(n_tasks)],
            "val_error_mean": sum(r["mean_val_error"] for r in runs) / trials,
            "best_step_mean": sum(r["best_step"] for r in runs) / trials,
            "overrides": per_ordering.get(o, {}),
            "runs": [f"runs/{o}/trial{k}" for k in range(trials)],
            # trials whose last depth died or whose loss stayed at chance (kept in the statistics)
            "unhealthy_trials": [k for k, r in enumerate(runs) if (r.get("health") or {}).get("unhealthy")],
        }
    comparisons = []
    for a, b in compared_pairs(orderings):
        for metric, key in (("test_error", "trials"), ("test_loss", "trial_losses")):
            test = paired_test(methods[a][key], methods[b][key])
            comparisons.append({"a": a, "b": b, "metric": metric, **test})
    return {
        "benchmark": cfg.benchmark,
        "task_names": first["task_names"],
        "orderings": list(orderings),
        "trials_per_method": trials,
        "config": cfg.to_dict(),
        "methods": methods,
        "comparisons": comparisons,
    }


def compared_pairs(orderings: Sequence[str]) -> list[tuple[str, str]]:
    """The paired tests a comparison reports, (a, b) for a − b: soft against every other method
    (so soft − gated and soft − routed), and each method that followed soft ordering (gated,
    routed) against parallel ordering."""
    pairs = [("soft", o) for o in orderings if "soft" in orderings and o != "soft"]
    if "parallel" in orderings:
        pairs += [(a, "parallel") for a in FOLLOW_UPS if a in orderings]
    return pairs


def results_markdown(s: dict[str, Any]) -> str:
    lines = [
        f"# {s['benchmark']}: {s['trials_per_method']} trials per method",
        "",
        "| method | test error % (mean ± 95% CI) | test loss (mean ± 95% CI) | val error % | best step "
        "| unhealthy trials |",
        "|---|---|---|---|---|---|",
    ]
    for o, m in s["methods"].items():
        sick = m.get("unhealthy_trials") or []
        lines.append(
            f"| {o} | {fmt_pm(m['test_error_mean'], m['test_error_ci95'], 100)} | "
            f"{fmt_pm(m['test_loss_mean'], m['test_loss_ci95'], digits=4)} | "
            f"{100 * m['val_error_mean']:.2f} | "
            f"{m['best_step_mean']:.0f} | {', '.join(f'trial {k}' for k in sick) or '—'} |"
        )
    if any(m.get("unhealthy_trials") for m in s["methods"].values()):
        lines += [
            "",
            "Unhealthy trials: at the end of training every unit of the last depth was dead, or the "
            "training loss was still at chance (run health: docs/results.md). They are kept in the "
            "statistics.",
        ]
    if s["comparisons"]:
        lines += [
            "",
            "Paired over trials (a − b; negative favours a):",
            "",
            "| comparison | metric | mean diff | a wins/losses | p (paired t) | p (Wilcoxon) |",
            "|---|---|---|---|---|---|",
        ]
        for c in s["comparisons"]:
            scale = 100 if c["metric"] == "test_error" else 1
            unit = " pp" if scale == 100 else ""
            lines.append(
                f"| {c['a']} vs {c['b']} | {c['metric']} | {scale * c['mean_diff']:+.3f}{unit} | "
                f"{c['wins']}/{c['losses']} | {fmt_p(c['p_value'])} | {fmt_p(c['p_wilcoxon'])} |"
            )
    names = s["task_names"]
    lines += [
        "",
        "Per-task test error % (mean over trials):",
        "",
        "| task | " + " | ".join(s["methods"]) + " |",
        "|---|" + "---|" * len(s["methods"]),
    ]
    for t, name in enumerate(names):
        row = " | ".join(f"{100 * m['per_task_error_mean'][t]:.2f}" for m in s["methods"].values())
        lines.append(f"| {name} | {row} |")
    overrides = {o: m["overrides"] for o, m in s["methods"].items() if m["overrides"]}
    if overrides:
        lines += ["", f"Per-method settings: {overrides}"]
    return "\n".join(lines) + "\n"
