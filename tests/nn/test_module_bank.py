"""ModuleBank (nn/module_bank.py): any blocks as the shared layers of Sec. 3, fused.

Outputs and gradients of a net on a ModuleBank must equal a plain loop over the ORIGINAL modules
(fp32, 1e-5) for every ordering, for each built-in block and for a block written here. The file is
over 300 lines on purpose: the loop it is checked against, and every error case, of one class.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from softorder.nn import (
    Decoders,
    DenseEncoders,
    ModuleBank,
    MultiTaskNet,
    SharedEncoder,
    SoftOrdering,
    make_ordering,
    reference_forward,
)
from softorder.nn.blocks import ResidualConv, ResidualMLP, TransformerBlock
from softorder.nn.orderings import HardOrdering

ORDERINGS = ["single", "parallel", "permuted", "soft"]
T, L, B = 3, 3, 3  # tasks, layers, rows per task


class Gated(nn.Module):
    """A user's own block: ``y + sigmoid(gate(y)) * tanh(lin(y))``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.lin, self.gate = nn.Linear(width, width), nn.Linear(width, width, bias=False)

    def forward(self, y: Tensor) -> Tensor:
        return y + torch.sigmoid(self.gate(y)) * torch.tanh(self.lin(y))


# Each kind: (a block, the per-row input shape of the core, the encoders, the task input shape).
KINDS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "resmlp": (lambda: ResidualMLP(6, hidden=10), (6,)),
    "resconv": (lambda: ResidualConv(4, pool=2), (4, 8, 8)),
    "transformer": (lambda: TransformerBlock(8, heads=2, ffn=12), (5, 8)),
    "user": (lambda: Gated(6), (6,)),
}


def _get(module: nn.Module, name: str) -> Tensor:
    return functools.reduce(getattr, name.split("."), module)  # type: ignore[arg-type, return-value]


def _net(
    kind: str, ordering: str, depth: int | None = None, run: str = "auto"
) -> tuple[MultiTaskNet, list[nn.Module]]:
    """A net whose core is a ModuleBank of fresh blocks, and deep copies of those blocks."""
    make, shape = KINDS[kind]
    n = T * L if ordering == "single" else L
    blocks = [make() for _ in range(n)]
    originals = copy.deepcopy(blocks)
    core = make_ordering(ordering, lambda _: ModuleBank(blocks, run), T, L, depth, seed=2)
    if kind == "resconv":  # (zero-padded channels would make GroupNorm's gradients ~1/sqrt(eps))
        encoders: nn.Module = SharedEncoder(nn.Conv2d(1, shape[0], 1))
    elif kind == "transformer":
        encoders = SharedEncoder(nn.Linear(3, shape[-1]))
    else:
        encoders = DenseEncoders([5, 4, 7], shape[0])
    features = int(torch.tensor(core.bank.output_shape(shape, core.depth)).prod())
    net = MultiTaskNet(encoders, core, Decoders(features, [2, 3, 4]))  # type: ignore[arg-type]
    return net.eval(), originals


def _inputs(kind: str, counts: tuple[int, ...]) -> list[Tensor]:
    _, shape = KINDS[kind]
    if kind == "resconv":
        return [torch.randn(c, 1, *shape[1:]) for c in counts]
    if kind == "transformer":
        return [torch.randn(c, shape[0], 3) for c in counts]
    return [torch.randn(c, f) for c, f in zip(counts, [5, 4, 7])]


def _loop(net: MultiTaskNet, blocks: list[nn.Module], xs: list[Tensor]) -> list[Tensor]:
    """Task by task, depth by depth, with the original modules as the layers F_j."""
    core, out = net.core, []
    for t, x in enumerate(xs):
        y = net.encoders.encode(t, x)
        for k in range(core.depth):
            if isinstance(core, SoftOrdering):
                s = core.weights()[t, k]
                y = sum(s[j] * blocks[j](y) for j in range(core.bank.num_layers))  # type: ignore[assignment]
            else:
                assert isinstance(core, HardOrdering)
                y = blocks[core.layer_at(t, k)](y)
        out.append(net.decoders.decode(t, y))
    return out


def _grads(loss: Tensor, params: list[Tensor]) -> list[Tensor]:
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def _check_against_loop(net: MultiTaskNet, blocks: list[nn.Module], xs: list[Tensor]) -> None:
    for p in net.ordering_parameters():  # a non-uniform S: the soft case is not symmetric
        nn.init.normal_(p, std=1.0)
    fused, loop = net(xs), _loop(net, blocks, xs)
    for a, b in zip(fused, loop):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    probes = [torch.randn_like(o) for o in fused]
    bank = net.core.bank
    assert isinstance(bank, ModuleBank)
    names = [n for n, _ in bank.stacked.named_parameters()]
    rest = [p for n, p in net.named_parameters() if not n.startswith("core.bank.")]
    g_fused = _grads(sum((o * w).sum() for o, w in zip(fused, probes)),  # type: ignore[arg-type]
                     rest + [_get(bank.stacked, n) for n in names])
    g_loop = _grads(sum((o * w).sum() for o, w in zip(loop, probes)),  # type: ignore[arg-type]
                    rest + [_get(m, n) for n in names for m in blocks])
    for a, b in zip(g_fused[: len(rest)], g_loop[: len(rest)]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    per_block = g_loop[len(rest):]
    for i, g in enumerate(g_fused[len(rest):]):
        want = torch.stack(per_block[i * len(blocks): (i + 1) * len(blocks)])
        torch.testing.assert_close(g, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("run", ["vmap", "loop"])
@pytest.mark.parametrize("counts", [(B, B, B), (B, 1, 2)], ids=["equal-batches", "uneven-batches"])
@pytest.mark.parametrize("ordering", ORDERINGS)
@pytest.mark.parametrize("kind", list(KINDS))
def test_module_bank_in_a_multitask_net_equals_a_loop_over_the_modules(
    kind: str, ordering: str, counts: tuple[int, ...], run: str
) -> None:
    torch.manual_seed(0)
    net, blocks = _net(kind, ordering, run=run)
    xs = _inputs(kind, counts)
    _check_against_loop(net, blocks, xs)
    for a, b in zip(net(xs), reference_forward(net, xs)):  # and the library's readable reference
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("depth", [1, 5])
@pytest.mark.parametrize("kind", ["resmlp", "transformer", "user"])
def test_soft_ordering_with_more_or_fewer_depths_than_blocks(kind: str, depth: int) -> None:
    torch.manual_seed(1)
    net, blocks = _net(kind, "soft", depth=depth)
    assert net.core.S.shape == (T, depth, L)
    _check_against_loop(net, blocks, _inputs(kind, (B, B, B)))


def test_orders_on_device_runs_the_blocks_of_each_task() -> None:
    torch.manual_seed(2)
    net, _ = _net("resmlp", "permuted")
    xs = _inputs("resmlp", (B, B, B))
    want = net(xs)
    net.core.use_orders_on_device()
    for a, b in zip(net(xs), want):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("kind", list(KINDS))
def test_module_j_reproduces_block_j_and_state_dict_round_trips(kind: str) -> None:
    torch.manual_seed(3)
    make, shape = KINDS[kind]
    blocks = [make().eval() for _ in range(L)]
    bank = ModuleBank(copy.deepcopy(blocks)).eval()
    y = torch.randn(4, *shape)
    for j in range(L):
        block = bank.module(j)
        assert type(block) is type(blocks[j]) and not block.training
        torch.testing.assert_close(block(y), blocks[j](y), atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(bank.layer(j, y), blocks[j](y), atol=1e-6, rtol=1e-6)
        assert set(block.state_dict()) == set(blocks[j].state_dict())
    torch.testing.assert_close(bank(y), torch.stack([b(y) for b in blocks], 1), atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # module(j) is a copy: changing it leaves the bank alone
        next(bank.module(0).parameters()).add_(1.0)
    torch.testing.assert_close(bank.layer(0, y), blocks[0](y), atol=1e-6, rtol=1e-6)

    state = bank.state_dict()
    assert all(k.startswith("stacked.") and v.shape[0] == L for k, v in state.items())
    other = ModuleBank([make() for _ in range(L)]).eval()
    assert not torch.allclose(other(y), bank(y))
    other.load_state_dict(state)
    torch.testing.assert_close(other(y), bank(y))


def test_stacked_parameters_are_what_an_optimiser_trains() -> None:
    torch.manual_seed(4)
    blocks = [ResidualMLP(4) for _ in range(L)]
    bank = ModuleBank(blocks)
    params = list(bank.parameters())
    assert len(params) == len(list(blocks[0].parameters()))
    assert sum(p.numel() for p in params) == L * sum(p.numel() for p in blocks[0].parameters())
    assert all(isinstance(p, nn.Parameter) and p.shape[0] == L for p in params)
    y = torch.randn(5, 4)
    before = bank(y).detach()
    opt = torch.optim.SGD(bank.parameters(), lr=0.1)
    bank(y).square().sum().backward()
    opt.step()
    assert not torch.allclose(bank(y), before)


def test_frozen_parameters_stay_frozen() -> None:
    blocks = [ResidualMLP(4) for _ in range(2)]
    for b in blocks:
        b.norm.requires_grad_(False)
    bank = ModuleBank(blocks)
    frozen = {n for n, p in bank.named_parameters() if not p.requires_grad}
    assert frozen == {"stacked.norm.weight", "stacked.norm.bias"}
    assert not bank.module(1).norm.weight.requires_grad


def test_dropout_inside_the_blocks_draws_independent_masks_per_layer() -> None:
    block = nn.Sequential(nn.Linear(64, 64), nn.Dropout(0.5))
    nn.init.eye_(block[0].weight)
    nn.init.zeros_(block[0].bias)
    bank = ModuleBank([copy.deepcopy(block) for _ in range(4)]).train()
    kept = bank(torch.ones(8, 64)) != 0  # [N, L, 64]
    assert 0.4 < kept.float().mean() < 0.6
    assert not any(torch.equal(kept[:, 0], kept[:, j]) for j in range(1, 4))
    bank.eval()
    assert bool((bank(torch.ones(8, 64)) == 1).all())


def test_reset_parameters_reinitialises_every_block() -> None:
    torch.manual_seed(5)
    bank = ModuleBank([ResidualMLP(4) for _ in range(3)])
    with torch.no_grad():
        for p in bank.parameters():
            p.fill_(0.5)
    bank.reset_parameters()
    w = bank.stacked.fc1.weight
    assert not torch.equal(w[0], w[1]) and bool((bank.stacked.norm.weight == 1).all())


# -- errors ---------------------------------------------------------------------------------------
def test_blocks_that_differ_name_the_first_mismatching_parameter() -> None:
    with pytest.raises(ValueError, match=r"block 1 has parameter weight \[3, 4\] float32 where block 0 has "
                                         r"weight \[4, 4\] float32"):
        ModuleBank([nn.Linear(4, 4), nn.Linear(4, 3)])
    with pytest.raises(ValueError, match=r"block 2 has parameter fc2.bias \[6\] float32 where block 0 has "
                                         r"fc2.bias \[4\] float32"):
        ModuleBank([ResidualMLP(4, 8), ResidualMLP(4, 8), _with_bias(ResidualMLP(4, 8), 6)])
    with pytest.raises(ValueError, match=r"block 1 has parameter \(none\) where block 0 has 1.weight"):
        ModuleBank([nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4)), nn.Sequential(nn.Linear(4, 4))])


def _with_bias(block: ResidualMLP, size: int) -> ResidualMLP:
    block.fc2.bias = nn.Parameter(torch.zeros(size))
    return block


def test_blocks_with_the_same_parameters_but_other_code_are_refused() -> None:
    a = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    b = nn.Sequential(nn.Linear(4, 4), nn.GELU())
    with pytest.raises(ValueError, match=r"share one structure.*block 1 has submodule '1' = GELU"):
        ModuleBank([a, b])
    with pytest.raises(ValueError, match=r"submodule '1' = Dropout\(p=0.2"):
        ModuleBank([nn.Sequential(nn.Linear(4, 4), nn.Dropout(p)) for p in (0.1, 0.2)])


@pytest.mark.parametrize("norm", [nn.BatchNorm1d(4), nn.InstanceNorm1d(4, track_running_stats=True)])
def test_running_statistics_are_refused_with_layernorm_or_groupnorm_suggested(norm: nn.Module) -> None:
    name = type(norm).__name__
    with pytest.raises(ValueError, match=rf"submodule '1' is a {name}.*LayerNorm or GroupNorm"):
        ModuleBank([nn.Sequential(nn.Linear(4, 4), copy.deepcopy(norm)) for _ in range(2)])


def test_a_block_whose_output_cannot_be_fed_back_names_the_shapes() -> None:
    bank = ModuleBank([nn.Linear(6, 4) for _ in range(2)])
    with pytest.raises(ValueError, match=r"core input: rows of shape \(6,\) become \(4,\) after 1 "
                                         r"block\(s\), which a block cannot take as input at depth 2"):
        bank.check_input(torch.randn(2, 6), "core input")
    net = MultiTaskNet(DenseEncoders([3], 6), SoftOrdering(bank, 1), Decoders(4, [2]))
    with pytest.raises(ValueError, match=r"rows of shape \(6,\) become \(4,\)"):
        net([torch.randn(2, 3)])
    with pytest.raises(ValueError, match=r"ModuleBank: rows of shape \(6,\) become \(4,\)"):
        bank.output_shape((6,), 2)


def test_input_the_blocks_cannot_take_names_the_shape() -> None:
    bank = ModuleBank([ResidualMLP(6) for _ in range(2)])
    with pytest.raises(ValueError, match=r"core input: the blocks cannot take rows of shape \(5,\)"):
        bank.check_input(torch.randn(2, 5), "core input")
    bank.check_input(torch.randn(2, 6), "core input")
    conv = ModuleBank([ResidualConv(2, pool=2) for _ in range(2)])
    assert conv.output_shape((2, 8, 8), 3) == (2, 1, 1)
    with pytest.raises(ValueError, match=r"ModuleBank: rows of shape \(2, 8, 8\) become \(2, 1, 1\) after 3"):
        conv.output_shape((2, 8, 8), 4)
    pool = ModuleBank([nn.Sequential(nn.Conv2d(2, 2, 1), nn.MaxPool2d(2)) for _ in range(2)])
    with pytest.raises(ValueError, match=r"become \(2, 1, 1\) after 2 block\(s\).*fewer depths"):
        pool.output_shape((2, 4, 4), 3)


def test_no_blocks_or_no_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match=r"non-empty list of nn\.Module"):
        ModuleBank([])
    with pytest.raises(ValueError, match="no parameters"):
        ModuleBank([nn.ReLU(), nn.ReLU()])
    with pytest.raises(IndexError, match=r"blocks 0\.\.1"):
        ModuleBank([nn.Linear(2, 2), nn.Linear(2, 2)]).module(2)


class _ReadsValues(nn.Module):
    """A block whose code reads a tensor value (no meta tensors for it)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, y: Tensor) -> Tensor:
        return self.lin(y) if float(y.abs().sum()) >= 0 else y


def test_a_block_that_reads_values_is_not_refused_by_the_shape_check() -> None:
    bank = ModuleBank([_ReadsValues(), _ReadsValues()])
    bank.check_input(torch.randn(3, 4), "core input")
    assert bank.layer(1, torch.randn(3, 4)).shape == (3, 4)


def test_auto_runs_attention_blocks_one_call_per_block_and_others_vmapped() -> None:
    assert ModuleBank([TransformerBlock(8, heads=2) for _ in range(2)]).run == "loop"
    assert ModuleBank([ResidualMLP(6) for _ in range(2)]).run == "vmap"
    assert "run='loop'" in repr(ModuleBank([ResidualMLP(6) for _ in range(2)], run="loop"))
    with pytest.raises(ValueError, match="ModuleBank: unknown run 'scan'; choose one of auto, vmap, loop"):
        ModuleBank([ResidualMLP(6) for _ in range(2)], run="scan")
