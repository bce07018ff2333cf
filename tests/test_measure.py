"""course_utils.measure: each method sees what it claims to (score matrices, Adam states), and they agree.

Speed is never asserted here (the machines are shared and noisy); only that time is positive and
that memory figures match the sizes of the tensors a computation must hold.
"""

import doctest

import course_utils  # noqa: F401  (before torch: OMP_WAIT_POLICY)
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import course_utils.measure as measure
from course_utils.attention import scaled_dot_product_attention
from course_utils.flash import tiled_attention
from course_utils.measure import best_time, count_parameters, peak_memory, peak_rss, time_and_memory


def test_doctests():
    result = doctest.testmod(measure, raise_on_error=False)
    assert result.attempted >= 1 and result.failed == 0


def test_time_and_memory_returns_time_and_memory():
    q = torch.randn(1, 2, 256, 16)
    seconds, peak = time_and_memory(lambda: scaled_dot_product_attention(q, q, q), repeats=1)
    assert 0 < seconds < 10
    n2 = 2 * 256 * 256 * 4  # one float32 (h, n, n) matrix
    assert 2 * n2 <= peak < 3 * n2  # ours holds the scores and the weights at once
    _, fused = time_and_memory(lambda: F.scaled_dot_product_attention(q, q, q), repeats=1)
    assert fused < n2 / 2  # the fused kernel never stores an (n, n) matrix
    with pytest.raises(TypeError, match="callable"):
        time_and_memory(3)


def test_peak_rss_sees_the_score_matrix():
    n = 1024
    q = torch.randn(n, 32)
    naive = peak_rss(lambda: torch.softmax(q @ q.T, -1) @ q)
    if naive is None:
        pytest.skip("no /proc/self/clear_refs here")
    tiled = peak_rss(lambda: tiled_attention(q, q, q, 128, 128))
    assert naive >= n * n * 4 * 0.9, f"the (n, n) float32 scores weigh 4 MiB; measured {naive / 2**20:.2f} MiB"
    assert tiled < naive / 2


def test_peak_memory_sees_activations_gradients_and_adam_states():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(500, 500), nn.ReLU(), nn.Linear(500, 500))
    opt = torch.optim.Adam(model.parameters())
    x = torch.randn(256, 500)

    def step():
        model(x).square().mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    peak, end = peak_memory(step)
    n_params = sum(p.numel() for p in model.parameters())
    assert end >= 2 * 4 * n_params * 0.99, "Adam's two states stay allocated after the step"
    assert peak >= 3 * 4 * n_params, "at the peak: gradients and both Adam states at least"
    assert peak < 3 * 4 * n_params + 10 * 256 * 500 * 4, "and not much more than a few activations"


def test_bad_input_names_the_argument():
    for f in (best_time, peak_memory, peak_rss, time_and_memory):
        with pytest.raises(TypeError, match="fn must be callable"):
            f(3)
    with pytest.raises(ValueError, match="repeats must be an int >= 1"):
        best_time(lambda: None, repeats=0)
    with pytest.raises(TypeError, match="parameter_formula"):
        count_parameters({"d_model": 4})


def test_count_parameters_counts_a_tied_matrix_once_and_can_skip_frozen_ones():
    emb = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = emb.weight  # tied, as in GPT-2 and the translator
    model = nn.ModuleList([emb, head, nn.Linear(4, 4)])
    assert count_parameters(model) == 40 + 20
    model[2].weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 40 + 4
