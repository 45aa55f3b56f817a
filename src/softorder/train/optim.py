"""The optimizer of every trainer: Adam with S in its own group (Sec. 3.3: S and the layers are
learned jointly; S may have its own learning rate ``s_lr`` and gets no weight decay)."""

from __future__ import annotations

from typing import Any

import torch

from softorder.nn.network import MultiTaskNet
from softorder.train.config import Config


def make_optimizer(net: MultiTaskNet, cfg: Config, capturable: bool = False) -> torch.optim.Optimizer:
    """Adam; S is its own group (its own learning rate ``s_lr``, no weight decay). ``capturable``:
    its step reads nothing back to the host, so that it can be captured in a CUDA graph."""
    s_params = list(net.ordering_parameters())
    s_ids = {id(p) for p in s_params}
    rest = [p for p in net.parameters() if p.requires_grad and id(p) not in s_ids]
    groups: list[dict[str, Any]] = [{"params": rest, "name": "net", **group_settings(cfg, "net")}]
    if s_params:
        groups.append({"params": s_params, "name": "S", **group_settings(cfg, "S")})
    try:  # the fused kernel is ~3x faster than foreach for many small per-task tensors
        return torch.optim.Adam(groups, lr=cfg.optim.lr, fused=True, capturable=capturable)
    except (RuntimeError, TypeError):  # older torch or a device without fused Adam
        return torch.optim.Adam(groups, lr=cfg.optim.lr, foreach=True, capturable=capturable)


def group_settings(cfg: Config, group: str) -> dict[str, float]:
    """Learning rate and weight decay of an optimizer group: ``S`` (own lr ``s_lr``, no weight
    decay) or ``net`` (everything else)."""
    if group == "S":
        return {"lr": cfg.optim.s_lr or cfg.optim.lr, "weight_decay": 0.0}
    return {"lr": cfg.optim.lr, "weight_decay": cfg.optim.weight_decay}


def warm_up(opt: torch.optim.Optimizer, cfg: Config, step: int) -> None:
    """Linear learning-rate warm-up: the learning rates of step ``step`` (1, 2, …) are
    ``min(1, step / lr_warmup)`` times their settings. Nothing happens when ``lr_warmup`` is 0."""
    steps = cfg.optim.lr_warmup
    if steps:
        factor = min(1.0, step / steps)
        for group in opt.param_groups:
            group["lr"] = group_settings(cfg, "S" if group.get("name") == "S" else "net")["lr"] * factor


def apply_optimizer_settings(opt: torch.optim.Optimizer, cfg: Config) -> None:
    """Set the learning rates and weight decay of ``cfg`` on a (resumed) optimizer's groups, and
    whether its step is capturable (``cuda_graphs``; a checkpoint's groups bring their own flag):
    a capturable Adam keeps each parameter's step count on the parameter's device."""
    for group in opt.param_groups:
        group.update(group_settings(cfg, "S" if group.get("name") == "S" else "net"))
        if "capturable" in group:
            group["capturable"] = cfg.run.cuda_graphs
            for p in group["params"]:
                state = opt.state.get(p, {})
                if "step" in state and torch.is_tensor(state["step"]):
                    device = p.device if cfg.run.cuda_graphs else torch.device("cpu")
                    state["step"] = state["step"].to(device, torch.float32)
