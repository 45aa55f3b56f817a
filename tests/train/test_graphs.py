"""``cuda_graphs: true``: the training step captured once and replayed (train/graphs.py).

On the CPU the option is refused with a one-line error; the replay tests are marked ``cuda``
(skipped without a GPU; ``scripts/gpu_check.sh`` runs them on a lent one)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from softorder.benchmarks import train
from softorder.train.config import Config
from softorder.train.graphs import GraphedStep

CFG = Config(benchmark="synthetic", tasks=3, width=16, steps=40, eval_every=10, checkpoint_every=20,
             dropout=0.0, lr=3e-3)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize(("settings", "message"), [
    ({}, r"cuda_graphs captures the training step on a CUDA GPU, not on 'cpu'; set device=cuda"),
    ({"device": "cuda", "compile": True}, r"cuda_graphs does not combine with compile"),
    ({"device": "cuda", "precision": "fp16"}, r"cuda_graphs does not combine with precision=fp16"),
])
def test_cuda_graphs_off_a_gpu_or_with_compile_or_fp16_is_a_one_line_error(
    settings: dict[str, object], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from softorder.train import config

    monkeypatch.setattr(config, "_check_device", lambda device: None)  # as if a GPU were here
    with pytest.raises(ValueError, match=message):
        CFG.replace(cuda_graphs=True, **settings)


def test_a_resumed_optimizer_takes_the_runs_capturable_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint's optimizer groups bring their own ``capturable`` flag; a run resumed with
    ``cuda_graphs`` turned on (or off) sets it, and keeps the step counts where Adam wants them."""
    from softorder.train import config
    from softorder.train.optim import apply_optimizer_settings

    w = torch.nn.Parameter(torch.zeros(3))
    saved = torch.optim.Adam([w])
    w.grad = torch.ones(3)
    saved.step()
    opt = torch.optim.Adam([w])
    opt.load_state_dict(saved.state_dict())
    monkeypatch.setattr(config, "_check_device", lambda device: None)  # as if a GPU were here
    apply_optimizer_settings(opt, CFG.replace(device="cuda", cuda_graphs=True))
    assert opt.param_groups[0]["capturable"] and opt.state[w]["step"].dtype == torch.float32
    apply_optimizer_settings(opt, CFG)
    assert not opt.param_groups[0]["capturable"] and opt.state[w]["step"].device.type == "cpu"


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("ordering", ["parallel", "soft", "gated"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_replayed_step_trains_as_the_eager_one(tmp_path: Path, ordering: str, precision: str) -> None:
    """Evaluation, health and checkpoints unchanged; the numbers equal to float rounding (the
    first steps, and the lr warm-up, run eagerly)."""
    cfg = CFG.replace(ordering=ordering, device="cuda", precision=precision, lr_warmup=5)
    eager = train(cfg, tmp_path / "eager", quiet=True)
    graphed = train(cfg.replace(cuda_graphs=True), tmp_path / "graphed", quiet=True)
    tol = 1e-4 if precision == "fp32" else 2e-2
    torch.testing.assert_close(torch.tensor(graphed["test_loss"]), torch.tensor(eager["test_loss"]),
                               rtol=tol, atol=tol)


@pytest.mark.cuda
@needs_cuda
def test_a_replayed_routed_step_anneals_and_records_its_routes(tmp_path: Path) -> None:
    """The router draws its noise inside the graph (another random stream than the eager step) and
    counts each replayed step after it (``advance``)."""
    cfg = CFG.replace(ordering="routed", s_lr=0.1, device="cuda", cuda_graphs=True)
    result = train(cfg, tmp_path / "graphed", quiet=True)
    state = torch.load(tmp_path / "graphed" / "checkpoint.pt", weights_only=True)["model"]
    assert int(state["core.route_step"]) == cfg.optim.steps
    assert len(result["route_choice"]) == len(result["task_names"]) and result["mean_test_error"] < 1.0


@pytest.mark.cuda
@needs_cuda
def test_a_batch_of_another_shape_is_refused_after_the_capture() -> None:
    w = torch.zeros(4, device="cuda", requires_grad=True)
    opt = torch.optim.Adam([w], capturable=True)

    def step(xs: object, ys: list[torch.Tensor]) -> torch.Tensor:
        assert isinstance(xs, list)
        loss = (xs[0] @ w - ys[0].float()).square().mean()
        loss.backward()
        opt.step()
        return loss.detach()

    g = GraphedStep(step, lambda: opt.zero_grad(set_to_none=True), warm_up_steps=1)
    x, y = [torch.randn(3, 4, device="cuda")], [torch.ones(3, device="cuda")]
    for _ in range(4):
        g(x, y)
    assert g.graph is not None
    with pytest.raises(ValueError, match="cuda_graphs: a batch of another shape than the captured one"):
        g([torch.randn(2, 4, device="cuda")], [torch.ones(2, device="cuda")])
