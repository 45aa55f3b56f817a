"""A layer bank of any blocks: L modules of one structure as the shared layers F_1..F_L (Sec. 3).

:class:`ModuleBank` takes L modules with the same parameter names and shapes (residual blocks,
transformer blocks, a user's own block) and stacks their parameters: each parameter of the bank
is one ``nn.Parameter`` of shape ``[L, *shape]`` (visible to optimisers, the state_dict and DDP).
How the L blocks run on the rows (``run``):

* ``"vmap"`` -- in one batched call, ``torch.func.vmap`` over the stacked weights of
  ``torch.func.functional_call`` on one block (no Python loop over blocks); dropout inside the
  blocks draws independent masks per layer (``randomness="different"``);
* ``"loop"`` -- one ``functional_call`` per block on all the rows: L calls, each an ordinary
  module call, so attention keeps PyTorch's fused kernels (flash / memory-efficient attention),
  which reject the strides a vmapped layer dimension gives them;
* ``"auto"`` (default) -- ``"loop"`` for blocks with attention (``nn.MultiheadAttention``: 1.2-1.3x
  faster than vmap for ``TransformerBlock`` on the CPU, and the fused kernels on a GPU),
  ``"vmap"`` for the others.

Hard orderings with per-trial orders on the device (``blocks``, the vectorised trials) always vmap.
The bank is a :class:`~softorder.nn.banks.LayerBank`, so every ordering of Sec. 3 (single, parallel, permuted,
soft), :class:`~softorder.nn.network.MultiTaskNet`, the readable reference and the vectorised
trials (``vmap`` over trials around the ``vmap`` over layers) take it.

Requirements, each checked with a one-line error:

* the blocks share one structure: the same parameter and buffer names, shapes and dtypes, the same
  submodule types and settings (the bank runs block 0's code with every block's weights);
* no running statistics (BatchNorm): they change during training and would be shared across the
  tasks' rows; use LayerNorm or GroupNorm;
* a block's output can be fed back in as its input (an ordering feeds each depth's output to the
  next depth): it keeps the feature size, or the channel count of an image block that pools.
  Checked on the first batch of each row shape (with shape-only "meta" tensors: no compute).

Other buffers are stacked like the parameters and taken as constants.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel

from softorder.nn.banks import LayerBank

State = tuple[dict[str, Tensor], dict[str, Tensor]]
#: How a ModuleBank runs its blocks (see the module docstring).
RUNS = ("auto", "vmap", "loop")


def _get(module: nn.Module, name: str) -> Tensor:
    # By attribute, not get_parameter: under functional_call (the vectorised trials) the
    # parameters are plain tensors set as attributes.
    return functools.reduce(getattr, name.split("."), module)  # type: ignore[arg-type, return-value]


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


@contextlib.contextmanager
def _batchable(device: torch.device) -> Iterator[None]:
    """Kernels that ``vmap`` has batching rules for, so that it never falls back to a loop (with a
    warning): transformer layers' plain path, not their fused inference kernel (eval mode without
    grad), and on the CPU the math attention, not the CPU flash-attention kernel."""
    was = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel([SDPBackend.MATH]) if device.type == "cpu" else contextlib.nullcontext():
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(was)


class ModuleBank(LayerBank):
    """The shared layers of Sec. 3 as ``len(modules)`` blocks of one structure, fused.

    The weights of ``modules`` are copied into the bank's stacked parameters (the modules
    themselves are not kept); :meth:`module` gives block j back as a plain module.
    ``bank.stacked`` holds them: it has the structure of ``modules[0]`` with every parameter and
    buffer of shape ``[L, *shape]`` (state_dict keys ``stacked.<name>``); it is storage, never
    called itself.
    """

    def __init__(self, modules: Sequence[nn.Module], run: str = "auto") -> None:
        modules = list(modules)
        _check_blocks(modules)
        if run not in RUNS:
            raise ValueError(f"ModuleBank: unknown run {run!r}; choose one of {', '.join(RUNS)}")
        super().__init__(len(modules), 0.0, "torch")  # dropout lives inside the blocks
        first = modules[0]
        attention = any(isinstance(m, nn.MultiheadAttention) for m in first.modules())
        #: "vmap" or "loop": how the blocks run (``run``, with "auto" resolved)
        self.run = run if run != "auto" else ("loop" if attention else "vmap")
        self._param_names = [n for n, _ in first.named_parameters()]
        self._buffer_names = [n for n, _ in first.named_buffers()]
        self._shapes_ok: set[tuple[tuple[int, ...], int]] = set()  # (row shape, blocks traced)
        memo: dict[int, Any] = {}  # block 0's structure, its tensors replaced by the stacked ones
        for name, p in first.named_parameters():
            stacked = torch.stack([_get(m, name).detach() for m in modules])
            memo[id(p)] = nn.Parameter(stacked.clone(), requires_grad=p.requires_grad)
        for name, b in first.named_buffers():
            memo[id(b)] = torch.stack([_get(m, name) for m in modules]).clone()
        self.stacked = copy.deepcopy(first, memo)

    # -- the stacked state, and one block's code on it -------------------------------------------
    def _state(self) -> State:
        return ({n: _get(self.stacked, n) for n in self._param_names},
                {n: _get(self.stacked, n) for n in self._buffer_names})

    def _run(self, params: dict[str, Tensor], buffers: dict[str, Tensor], y: Tensor) -> Tensor:
        return functional_call(self.stacked, (params, buffers), (y,))

    def _vmap(self, in_dims: tuple[int | None, ...]) -> Any:
        return vmap(self._run, in_dims=in_dims, randomness="different")

    # -- LayerBank ----------------------------------------------------------------------------------
    def forward(self, y: Tensor) -> Tensor:
        """Every block on every row, one vmapped call (or L calls): ``[N, *in] -> [N, L, *out]``."""
        params, buffers = self._state()
        if self.run == "loop":  # (kernels with vmap rules: the vectorised trials vmap around the bank)
            with _batchable(y.device):
                return torch.stack([self._run({n: p[j] for n, p in params.items()},
                                              {n: b[j] for n, b in buffers.items()}, y)
                                    for j in range(self.num_layers)], dim=1)
        with _batchable(y.device):
            out = self._vmap((0, 0, None))(params, buffers, y)  # [L, N, *out]
        return out.movedim(0, 1)

    def layer(self, j: int, y: Tensor) -> Tensor:
        """Block ``F_j`` alone on all rows ``y`` (Eq. 2, 3)."""
        params, buffers = self._state()
        with _batchable(y.device):
            return self._run({n: p[j] for n, p in params.items()}, {n: b[j] for n, b in buffers.items()}, y)

    def segments(self, y: Tensor, layers: Sequence[int], counts: Sequence[int]) -> Tensor:
        """Block ``layers[i]`` on the i-th block of ``counts[i]`` rows: one block call per segment
        with ``run="loop"``, else :meth:`LayerBank.segments` (one vmapped call)."""
        if self.run == "loop" and len(set(layers)) > 1:
            return torch.cat([self.layer(j, part) for j, part in zip(layers, y.split(list(counts)))])
        return super().segments(y, layers, counts)

    def blocks(self, y: Tensor, idx: Tensor) -> Tensor:
        """Block ``idx[s]`` on the s-th of ``len(idx)`` equal blocks of rows, one vmapped call."""
        params, buffers = self._state()
        rows = y.reshape(idx.shape[0], -1, *y.shape[1:])  # [S, B, *in]
        with _batchable(y.device):
            out = self._vmap((0, 0, 0))({n: p[idx] for n, p in params.items()},
                                        {n: b[idx] for n, b in buffers.items()}, rows)
        return out.flatten(0, 1)

    def output_shape(self, in_shape: Sequence[int], depth: int) -> tuple[int, ...]:
        """Shape of one row after ``depth`` blocks (traced on shape-only tensors)."""
        shapes = self._trace(tuple(in_shape), depth, "ModuleBank")
        return shapes[-1]

    def check_input(self, y: Tensor, where: str, depth: int = 2) -> None:
        """A ValueError naming ``where`` when the blocks cannot take rows of ``y``'s shape, or, for
        ``depth`` of 2 or more, cannot take their own output back (checked once per row shape)."""
        weights = next(iter(self._state()[0].values()))
        autocast = torch.is_autocast_enabled(y.device.type)
        if y.is_floating_point() and y.dtype != weights.dtype and not autocast:
            raise ValueError(f"{where}: got {y.dtype} rows, but the blocks' weights are {weights.dtype}; "
                             f"convert the input (x.to({weights.dtype})) or the blocks (.to({y.dtype}))")
        shape, blocks = tuple(y.shape[1:]), min(depth, 2)
        if (shape, blocks) not in self._shapes_ok:
            self._trace(shape, blocks, where)
            self._shapes_ok.add((shape, blocks))

    def _trace(self, in_shape: tuple[int, ...], depth: int, where: str) -> list[tuple[int, ...]]:
        """The row shapes before and after each of ``depth`` blocks, run on "meta" tensors (shapes
        only). An op without a meta kernel, or a block that reads tensor values, ends the check
        early (nothing is refused for it)."""
        params, buffers = self._state()
        meta = ({n: torch.empty(p.shape[1:], dtype=p.dtype, device="meta") for n, p in params.items()},
                {n: torch.empty(b.shape[1:], dtype=b.dtype, device="meta") for n, b in buffers.items()})
        x = torch.empty((1, *in_shape), dtype=params[self._param_names[0]].dtype, device="meta")
        shapes = [in_shape]
        for k in range(depth):
            try:
                with _batchable(x.device):
                    x = self._run(*meta, x)
            except NotImplementedError:
                break
            except Exception as e:
                if "meta" in str(e).lower():  # the block reads values (.item(), if x > 0): unknown
                    break
                if k == 0:
                    raise ValueError(
                        f"{where}: the blocks cannot take rows of shape {in_shape} ({_first_line(e)})"
                    ) from None
                raise ValueError(
                    f"{where}: rows of shape {in_shape} become {shapes[-1]} after {k} block(s), which a "
                    f"block cannot take as input at depth {k + 1} ({_first_line(e)}); the orderings feed "
                    "each block's output to the next block: keep the feature size or channels (images "
                    "that shrink: larger inputs or fewer depths)"
                ) from None
            if not isinstance(x, Tensor):
                raise ValueError(
                    f"{where}: a block returns a {type(x).__name__}, not one tensor (nn.GRU and nn.LSTM "
                    "return (output, state)); wrap the block in a module whose forward returns one "
                    "tensor, e.g. gru(x)[0]"
                )
            shapes.append(tuple(x.shape[1:]))
        return shapes

    # -- the blocks as plain modules -------------------------------------------------------------
    def module(self, j: int) -> nn.Module:
        """Block ``j`` as a plain module holding a copy of its current weights (in the bank's mode)."""
        if not 0 <= j < self.num_layers:
            raise IndexError(f"block {j} is out of range: the bank has blocks 0..{self.num_layers - 1}")
        params, buffers = self._state()
        memo: dict[int, Any] = {id(p): nn.Parameter(p[j].detach().clone(), requires_grad=p.requires_grad)
                                for p in params.values()}
        memo.update({id(b): b[j].clone() for b in buffers.values()})
        return copy.deepcopy(self.stacked, memo)

    def reset_parameters(self) -> None:
        """Re-initialise every block as its own submodules' ``reset_parameters`` do."""
        params, _ = self._state()
        with torch.no_grad():
            for j in range(self.num_layers):
                block = self.module(j)
                for sub in block.modules():
                    reset = getattr(sub, "reset_parameters", None)
                    if callable(reset):
                        reset()
                for name, p in params.items():
                    p[j].copy_(_get(block, name))

    def extra_repr(self) -> str:
        return f"layers={self.num_layers}, block={type(self.stacked).__name__}, run={self.run!r}"


def _check_blocks(modules: list[nn.Module]) -> None:
    """One-line errors for blocks that cannot share one fused bank (see the module docstring)."""
    if not modules or not all(isinstance(m, nn.Module) for m in modules):
        raise ValueError("ModuleBank takes a non-empty list of nn.Module blocks")
    first = modules[0]
    for name, sub in first.named_modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm) or getattr(sub, "track_running_stats", False):
            raise ValueError(
                f"ModuleBank: block submodule {name or '(the block)'!r} is a {type(sub).__name__}, whose "
                "batch/running statistics cannot be shared by the stacked layers and tasks; use "
                "LayerNorm or GroupNorm instead"
            )
    if not any(True for _ in first.parameters()):
        raise ValueError(f"ModuleBank: the blocks ({type(first).__name__}) have no parameters to stack")
    for j, m in enumerate(modules[1:], start=1):
        for kind, a, b in (("parameter", first.named_parameters(), m.named_parameters()),
                           ("buffer", first.named_buffers(), m.named_buffers())):
            for (na, ta), (nb, tb) in itertools.zip_longest(a, b, fillvalue=("(none)", None)):
                if na != nb or ta is None or tb is None or ta.shape != tb.shape or ta.dtype != tb.dtype:
                    raise ValueError(
                        f"ModuleBank: the blocks must have the same parameters; block {j} has {kind} "
                        f"{_said(nb, tb)} where block 0 has {_said(na, ta)}"
                    )
        for (na, sa), (nb, sb) in itertools.zip_longest(first.named_modules(), m.named_modules(),
                                                        fillvalue=("(none)", None)):
            if na != nb or _describe(sa) != _describe(sb):
                raise ValueError(
                    f"ModuleBank: the blocks must share one structure (the bank runs block 0's code); "
                    f"block {j} has submodule {nb or '(the block)'!r} = {_describe(sb)} where block 0 has "
                    f"{na or '(the block)'!r} = {_describe(sa)}"
                )


def _said(name: str, t: Tensor | None) -> str:
    return name if t is None else f"{name} {list(t.shape)} {t.dtype}".replace("torch.", "")


def _describe(module: nn.Module | None) -> str:
    return "(none)" if module is None else f"{type(module).__name__}({module.extra_repr()})"
