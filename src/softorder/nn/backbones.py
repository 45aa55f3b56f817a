"""Image backbones for the CelebA experiment (paper Sec. 4.4).

Sec. 4.4: the encoder E, shared by all 40 attribute tasks, is "a ResNet-50 model truncated to
the final average pooling layer, followed by a linear layer projecting the embedding to size
256"; the core is four dense ReLU layers of 256 units and each decoder D_t is a dense sigmoid
layer. :func:`celeba_net` builds exactly that on :func:`shared_encoder_net`.

ImageNet weights are read from a LOCAL file (a torchvision ``state_dict``); nothing is
downloaded unless ``pretrained_download=True`` is passed explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from softorder.nn.banks import Init
from softorder.nn.learned import Anneal
from softorder.nn.network import BankFactory, MultiTaskNet, shared_encoder_net

#: File name of torchvision's ``ResNet50_Weights.IMAGENET1K_V2`` (the V1 file is resnet50-0676ba61.pth).
RESNET50_FILE = "resnet50-11ad3fa6.pth"
RESNET50_FEATURES = 2048
NUM_ATTRIBUTES = 40
WEIGHTS_HELP = (
    f"expected a torchvision ResNet-50 ImageNet state_dict such as {RESNET50_FILE} "
    "(ResNet50_Weights.IMAGENET1K_V2). On a machine with internet run "
    "`python -c \"import torchvision; torchvision.models.resnet50(weights='IMAGENET1K_V2')\"` "
    f"and copy ~/.cache/torch/hub/checkpoints/{RESNET50_FILE} to this machine"
)


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights file {path} does not exist; {WEIGHTS_HELP}")
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # not a torch file, truncated, or holds pickled objects
        raise ValueError(f"cannot read backbone weights {path} ({e}); {WEIGHTS_HELP}") from e
    for key in ("state_dict", "model"):  # a checkpoint wrapping the state_dict
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"backbone weights {path} do not hold a state_dict of tensors; {WEIGHTS_HELP}")
    return obj


def _names(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def load_resnet50_weights(model: nn.Module, weights: str | os.PathLike[str]) -> None:
    """Load a torchvision ResNet-50 state_dict into ``model`` strictly (every key, every shape).

    ``fc.*`` (ImageNet's 1000-way classifier) is accepted and ignored when ``model.fc`` is
    an :class:`~torch.nn.Identity`. Errors name the missing / unexpected keys and the file expected.
    """
    path = Path(weights).expanduser()
    state = _read_state_dict(path)
    if isinstance(getattr(model, "fc", None), nn.Identity):
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        parts = [f"missing keys: {_names(missing)}"] if missing else []
        parts += [f"unexpected keys: {_names(unexpected)}"] if unexpected else []
        raise ValueError(
            f"backbone weights {path} do not match ResNet-50 ({'; '.join(parts)}); {WEIGHTS_HELP}"
        )
    wrong = [f"{k} {tuple(state[k].shape)} (want {tuple(v.shape)})" for k, v in own.items()
             if state[k].shape != v.shape]
    if wrong:
        raise ValueError(f"backbone weights {path} have wrong shapes: {_names(wrong, 3)}; {WEIGHTS_HELP}")
    model.load_state_dict(state, strict=True)


def resnet50_trunk(
    weights: str | os.PathLike[str] | None = None, pretrained_download: bool = False
) -> nn.Module:
    """torchvision ResNet-50 truncated at the global average pooling: images -> ``[B, 2048]``
    (the Sec. 4.4 encoder before its projection).

    ``weights``: a local torchvision ImageNet state_dict file (loaded with ``weights_only=True``,
    strictly). ``pretrained_download=True`` downloads ``ResNet50_Weights.IMAGENET1K_V2`` instead
    (network; only when the user asks for it). Neither: random initialisation.
    """
    from torchvision.models import ResNet50_Weights, resnet50

    if weights is not None and pretrained_download:
        raise ValueError("give either backbone weights (a local file) or pretrained_download=True, not both")
    model = resnet50(weights=ResNet50_Weights.IMAGENET1K_V2 if pretrained_download else None)
    model.fc = nn.Identity()
    if weights is not None:
        load_resnet50_weights(model, weights)
    return model


class SmallTrunk(nn.Module):
    """A tiny conv trunk (3 strided conv + ReLU, global average pooling) -> ``[B, 32]``.

    A stand-in for ResNet-50 in tests and CPU smoke runs; not part of the paper's setup.
    """

    out_features = 32

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, self.out_features, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class ImageEncoder(nn.Module):
    """The shared encoder of Sec. 4.4: ``trunk`` -> ``Linear(features -> width)`` -> ReLU."""

    def __init__(self, trunk: nn.Module, features: int, width: int) -> None:
        super().__init__()
        self.trunk, self.project = trunk, nn.Linear(features, width)
        self.features, self.width = features, width

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected RGB images [batch, 3, H, W], got {tuple(x.shape)}")
        return torch.relu(self.project(self.trunk(x)))


def celeba_net(
    ordering: str = "soft",
    width: int = 256,
    num_layers: int = 4,
    backbone_weights: str | os.PathLike[str] | None = None,
    *,
    num_tasks: int = NUM_ATTRIBUTES,
    depth: int | None = None,
    dropout: float = 0.0,
    seed: int = 0,
    init: Init = "torch",
    temperature: float = 1.0,
    soft_norm: str = "none",
    depth_norm: str = "none",
    small_backbone: bool = False,
    pretrained_download: bool = False,
    bank: BankFactory | None = None,
    gate_hidden: int = 0,
    anneal: Anneal | None = None,
) -> MultiTaskNet:
    """The CelebA model (Sec. 4.4): a shared ResNet-50 trunk + ``Linear(2048 -> width)`` + ReLU as
    the single encoder, ``num_layers`` dense ReLU layers of ``width`` in ``ordering`` as the core,
    one sigmoid decoder per attribute (``num_tasks`` binary tasks, 40 by default). ``bank``
    replaces the dense layers (see :func:`~softorder.nn.network.shared_encoder_net`).

    ``small_backbone=True`` swaps ResNet-50 for :class:`SmallTrunk` (tests / CPU); it takes no
    ImageNet weights. ``net(x)`` on images ``[B, 3, H, W]`` returns one ``[B]`` logit per task.
    """
    if small_backbone:
        if backbone_weights is not None or pretrained_download:
            raise ValueError(
                "ImageNet backbone weights need the ResNet-50 backbone; drop them or set small_backbone=false"
            )
        trunk: nn.Module = SmallTrunk()
        features = SmallTrunk.out_features
    else:
        trunk = resnet50_trunk(backbone_weights, pretrained_download)
        features = RESNET50_FEATURES
    if not 1 <= num_tasks <= NUM_ATTRIBUTES:
        raise ValueError(f"CelebA has 1..{NUM_ATTRIBUTES} attribute tasks, got num_tasks={num_tasks}")
    return shared_encoder_net(
        ImageEncoder(trunk, features, width),
        [2] * num_tasks,
        width=width,
        num_layers=num_layers,
        depth=depth,
        ordering=ordering,
        dropout=dropout,
        binary=True,
        seed=seed,
        init=init,
        temperature=temperature,
        soft_norm=soft_norm,
        depth_norm=depth_norm,
        bank=bank,
        gate_hidden=gate_hidden,
        anneal=anneal,
    )
