"""``softorder bench`` and ``scripts/bench_core.py``."""

from __future__ import annotations

import json

import pytest
import torch

from softorder.bench import WORKLOADS, step_flops
from softorder.cli import main

KEYS = {
    "workload",
    "device",
    "dtype",
    "loop_ms",
    "fused_ms",
    "parallel_ms",
    "loop_over_fused",
    "fused_over_parallel",
    "samples_per_s",
    "step_gflop",
    "fused_tflops",
    "parallel_tflops",
    "loop_tflops",
}


def test_bench_prints_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--workloads", "dense-T10", "--min-time", "0.05", "--skip-loop", "--json"]
    assert main(argv) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert len(lines) == 1
    r = json.loads(lines[0])
    assert set(r) >= KEYS
    assert r["workload"] == "dense-T10" and r["dtype"] == "fp32" and r["loop_ms"] is None
    assert r["loop_tflops"] is None
    assert r["fused_ms"] > 0 and r["parallel_ms"] > 0 and r["samples_per_s"] > 0
    assert r["fused_tflops"] == pytest.approx(r["step_gflop"] / r["fused_ms"])


def test_bench_times_the_learned_orderings_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--workloads", "dense-T10", "--min-time", "0", "--skip-loop", "--json"]
    assert main(argv) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["gated_ms"] is None and r["routed_ms"] is None
    assert main([*argv, "--learned"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["gated_ms"] > 0 and r["routed_ms"] > 0
    assert main(["bench", "--workloads", "dense-T10", "--min-time", "0", "--skip-loop", "--learned"]) == 0
    header, row = capsys.readouterr().out.splitlines()[:2]
    assert header.split()[-4:] == ["gated", "ms", "routed", "ms"] and row.split()[-1] != "-"


def test_bench_table_and_unknown_workload(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--workloads", "dense-T10", "--min-time", "0", "--skip-loop"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["workload", "device", "dtype"] and "TFLOP/s" in out[0]
    assert out[1].startswith("dense-T10") and "rows/s" in out[1]
    assert main(["bench", "--workloads", "dense-T11"]) == 2
    assert "unknown workload(s) dense-T11" in capsys.readouterr().err


def test_step_flops_by_hand() -> None:
    # dense-T10: 640 rows, width 32, 4 layers, 10 classes; fwd = encoders + core + mixing + decoders
    fwd = 2 * 640 * 32 * 32 + 4 * 2 * 640 * 32 * 128 + 4 * 2 * 640 * 4 * 32 + 2 * 640 * 32 * 10
    assert step_flops(WORKLOADS["dense-T10"]) == 3 * fwd
    # conv-T10-28px: 160 images, 53 channels, padding 1 keeps 28 -> 14 -> 7 -> 3 -> 1 after pooling
    n, c = 160, 53
    # the first depth convolves the image's one channel, not its zero-padding to 53 (ConvBank)
    convs = sum(2 * n * 4 * c * c_in * 9 * h * h for c_in, h in ((1, 28), (c, 14), (c, 7), (c, 3)))
    mix = sum(2 * n * 4 * c * h * h for h in (14, 7, 3, 1))
    assert step_flops(WORKLOADS["conv-T10-28px"]) == 3 * (convs + mix + 2 * n * c * 20)
    assert step_flops(WORKLOADS["conv-T50"], "parallel") < step_flops(WORKLOADS["conv-T50"]) / 3


def test_block_workloads_time_fused_loop_and_parallel_on_the_same_math() -> None:
    from softorder.bench import Workload, block_steps

    for kind in ("resmlp", "transformer"):
        w = Workload(f"tiny-{kind}", kind, 2, 2, 8, 3, seq=4, heads=2)
        steps = block_steps(w, torch.device("cpu"), "fp32")
        assert set(steps) == {"fused", "loop", "parallel"}
        for step in steps.values():
            step()  # one Adam step each; the equivalence of fused and loop is tested in tests/nn
    assert step_flops(WORKLOADS["resmlp-T10"], "soft") == 4 * step_flops(WORKLOADS["resmlp-T10"], "parallel")


def test_peer_model_is_eq7_one_task_per_call() -> None:
    from softorder.bench import PeerSoftOrder, Workload, peer_step

    net = PeerSoftOrder(5, 6, 3, 4, tasks=2)
    x = torch.randn(7, 5)
    y = torch.relu(net.encoders[1](x))
    for _ in range(3):  # S = 0: every depth averages the three layers
        y = sum(torch.relu(f(y)) for f in net.core) / 3
    torch.testing.assert_close(net(x, 1), net.decoders[1](y))
    peer_step(Workload("tiny", "dense", 2, 2, 8, 3), torch.device("cpu"))()
