"""Bad input gets a ValueError that names the task and says expected vs got."""

from __future__ import annotations

import pytest
import torch

import softorder as so
from softorder.nn import ConvBank, DenseBank, ParallelOrdering, PermutedOrdering, SoftOrdering


@pytest.fixture
def net() -> so.MultiTaskNet:
    return so.dense_net([3, 4], [2, 3], width=8, check_finite=True)


def test_wrong_number_of_task_batches(net: so.MultiTaskNet) -> None:
    with pytest.raises(ValueError, match=r"expected 2 batches .* got 1"):
        net([torch.randn(2, 3)])


def test_task_id_out_of_range(net: so.MultiTaskNet) -> None:
    with pytest.raises(ValueError, match=r"task id 5 is out of range.*0\.\.1"):
        net([torch.randn(2, 3)], tasks=[5])


def test_wrong_input_size_names_task(net: so.MultiTaskNet) -> None:
    with pytest.raises(ValueError, match=r"task 1: expected input of shape \[batch, 4\], got \(2, 3\)"):
        net([torch.randn(2, 3), torch.randn(2, 3)])


def test_wrong_channel_count_into_conv_bank() -> None:
    net = so.conv_net([2], image_shape=(1, 16, 16), channels=4, padding=1)
    with pytest.raises(ValueError, match=r"task 0: expected images \[batch, c <= 4"):
        net([torch.randn(2, 6, 16, 16)])
    ordering = ParallelOrdering(ConvBank(4, 2, padding=1), 1)
    with pytest.raises(ValueError, match=r"conv core expects \[N, c, H, W\] inputs with 1 <= c <= 4 .*"
                                         r"got shape \(2, 5, 8, 8\)"):
        ordering.bank.check_input(torch.randn(2, 5, 8, 8), "core input")
    ordering.bank.check_input(torch.randn(2, 3, 8, 8), "core input")  # fewer: zero-padded


def test_labels_out_of_range_name_task_and_row(net: so.MultiTaskNet) -> None:
    logits = net([torch.randn(3, 3), torch.randn(3, 4)])
    with pytest.raises(ValueError, match=r"task 1: label 3 at row 2 is outside 0\.\.2"):
        net.losses(logits, [torch.tensor([0, 1, 1]), torch.tensor([0, 2, 3])])


def test_non_finite_inputs_rejected_when_checked(net: so.MultiTaskNet) -> None:
    bad = torch.randn(2, 4)
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"task 1: input contains NaN or inf"):
        net([torch.randn(2, 3), bad])
    net.check_finite = False
    net([torch.randn(2, 3), bad])  # allowed when the check is off


def test_depth_mismatch_for_hard_orderings() -> None:
    with pytest.raises(ValueError, match=r"parallel ordering .* must be a multiple of the number of layers"):
        ParallelOrdering(DenseBank(4, 3), 2, depth=5)
    assert ParallelOrdering(DenseBank(4, 3), 2, depth=6).order[0].tolist() == [0, 1, 2, 0, 1, 2]  # cycled
    with pytest.raises(ValueError, match=r"permuted ordering .* Only the learned orderings"):
        PermutedOrdering(DenseBank(4, 3), 2, depth=2)
    assert SoftOrdering(DenseBank(4, 3), 2, depth=5).S.shape == (2, 5, 3)


def test_unknown_ordering_lists_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown ordering 'hard'.*single, parallel, permuted, soft"):
        so.dense_net(3, [2], ordering="hard")


def test_images_too_small_for_depth() -> None:
    with pytest.raises(ValueError, match="vanish after 4 conv layers"):
        so.conv_net([2], image_shape=(1, 28, 28), channels=4, padding=0)


def test_empty_batch_is_an_error_not_a_nan_loss(net: so.MultiTaskNet) -> None:
    logits = net([torch.randn(0, 3), torch.randn(2, 4)])
    with pytest.raises(ValueError, match=r"task 0: the batch is empty"):
        net.losses(logits, [torch.zeros(0, dtype=torch.long), torch.zeros(2, dtype=torch.long)])


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (torch.zeros(2), r"task 1: labels must be integer class ids \(torch.long\), got torch.float32"),
        (torch.zeros(3, dtype=torch.long), r"task 1: 3 labels for 2 rows of logits"),
    ],
)
def test_label_dtype_and_length_name_the_task(
    net: so.MultiTaskNet, labels: torch.Tensor, message: str
) -> None:
    logits = net([torch.randn(2, 3), torch.randn(2, 4)])
    with pytest.raises(ValueError, match=message):
        net.losses(logits, [torch.zeros(2, dtype=torch.long), labels])


def test_input_dtype_and_device_name_the_task(net: so.MultiTaskNet) -> None:
    with pytest.raises(ValueError, match=r"task 1: expected a floating-point input, got torch.int64"):
        net([torch.randn(2, 3), torch.zeros(2, 4, dtype=torch.long)])
    with pytest.raises(ValueError, match=r"task 0: the input is on meta but the network is on cpu"):
        net([torch.randn(2, 3, device="meta"), torch.randn(2, 4)])


def test_library_misuse_names_the_argument_and_the_fix(net: so.MultiTaskNet) -> None:
    core = so.SoftOrder([torch.nn.Linear(8, 8) for _ in range(3)], num_tasks=2)
    with pytest.raises(ValueError, match=r"SoftOrder input: got torch.float64 rows.*x.to\(torch.float32\)"):
        core(torch.randn(4, 8, dtype=torch.float64), 0)
    gru = so.SoftOrder([torch.nn.GRU(8, 8, batch_first=True) for _ in range(2)], num_tasks=2)
    with pytest.raises(ValueError, match=r"a block returns a tuple, not one tensor.*gru\(x\)\[0\]"):
        gru(torch.randn(4, 5, 8), 0)
    xs, y = [torch.randn(4, 3), torch.randn(4, 4)], torch.tensor([0, 1, 2, 0], dtype=torch.int32)
    with pytest.raises(ValueError, match=r"task 0: labels are torch.int32.*labels.long\(\)"):
        net.losses(net(xs), [y % 2, y], check=True)
    with pytest.raises(ValueError, match=r"task 0 has 3 classes, but binary=True \(the default"):
        so.shared_encoder_net(torch.nn.Linear(6, 16), [3], width=16)
    with pytest.raises(ValueError, match=r"images of 3 channels but channels=2.*channels >= 3"):
        so.conv_net([5], image_shape=(3, 105, 105), channels=2)  # at construction, not the first forward
