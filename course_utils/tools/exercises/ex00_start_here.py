"""The checks behind notebook 00's warm-up exercise, a numerically stable softmax.

The test cell shows a hand-worked example and calls `softmax_properties`; its hidden part
calls `check_softmax`. The reference (`torch.softmax`) and the known mistakes live here, so
the student's copy shows no answer. Every input here differs from the visible one.

>>> right = lambda x: (x - x.max(-1, keepdim=True).values).exp() / (x - x.max(-1, keepdim=True).values).exp().sum(
...     -1, keepdim=True)
>>> softmax_properties(right); check_softmax(right)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_utils.tools.grading import call, expect, expect_close, expect_dtype, expect_shape

__all__ = ["softmax_mistakes", "softmax_properties", "check_softmax"]

FORBIDDEN = [torch.softmax, F.softmax, torch.Tensor.softmax]  # the exercise asks for the formula itself


def softmax_mistakes(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The outputs of the usual wrong softmaxes on x, keyed by what the student did (for `mistakes=`)."""
    e = x.exp()
    shifted = (x - x.max()).exp()
    out = {
        "normalised over the first dimension: sum over dim=-1 (the last), so each row sums to 1": e
        / e.sum(dim=0, keepdim=True),
        "normalised over the whole tensor: sum over dim=-1 with keepdim=True, per row": e / e.sum(),
        "not numerically stable: subtract the row maximum before exp": e / e.sum(-1, keepdim=True),
        "the maximum of the whole tensor is subtracted; subtract each row's own maximum "
        "(x.max(dim=-1, keepdim=True))": shifted / shifted.sum(-1, keepdim=True),
    }
    if x.dim() >= 3:
        out["normalised over a fixed dimension: use dim=-1 (the last), whatever the number of dimensions"] = (
            torch.softmax(x, dim=1)
        )
    return out


def _check(fn, x: torch.Tensor, on: str) -> None:
    """fn(x) equals torch.softmax(x, -1), in x's dtype and shape; known mistakes named."""
    y = call(fn, x, what="softmax", forbidden=FORBIDDEN)
    expect_shape(y, x.shape, f"softmax of {on}")
    expect_dtype(y, x.dtype, f"softmax of {on}")
    expect_close(y, torch.softmax(x, dim=-1), "softmax(x)", mistakes=softmax_mistakes(x), on=on)


def softmax_properties(fn) -> None:
    """Visible checks: shape and dtype kept, entries in [0, 1], rows sum to 1, adding a constant to a row changes nothing."""
    g = torch.Generator().manual_seed(10)
    x = torch.randn(3, 4, generator=g) * 3
    y = call(fn, x, what="softmax", forbidden=FORBIDDEN)
    expect_shape(y, x.shape, "softmax of a (3, 4) tensor")
    expect_dtype(y, x.dtype, "softmax of a float32 tensor")
    expect(bool(torch.isfinite(y).all()), "softmax of a (3, 4) tensor of small numbers contains NaN or inf.")
    expect(bool((y >= 0).all() and (y <= 1).all()), "every softmax weight should lie between 0 and 1.")
    expect_close(y.sum(-1), torch.ones(3), "the sum of each row of softmax(x)", atol=1e-5)
    shift = torch.tensor([[1.0], [-2.0], [5.0]])  # a constant per row
    expect_close(
        call(fn, x + shift, what="softmax", forbidden=FORBIDDEN),
        y,
        "softmax(x + a constant per row), which should equal softmax(x)",
        atol=1e-5,
    )


def check_softmax(fn) -> None:
    """Hidden checks: large scores, rows of very different scales, 1-D and 3-D inputs, float64, one-element rows."""
    g = torch.Generator().manual_seed(1)
    _check(fn, torch.tensor([[1.0, 2.0, 3.0], [1000.0, 1001.0, 1002.0]]), "rows of very different scales")
    _check(fn, torch.tensor([[-1000.0, -999.0], [0.5, 0.0]]), "a row of very negative scores")
    _check(fn, torch.randn(2, 3, 5, generator=g) * 4, "a (2, 3, 5) tensor")
    _check(fn, torch.randn(7, generator=g, dtype=torch.float64), "a 1-D float64 tensor")
    _check(fn, torch.randn(4, 1, generator=g) * 10, "rows of one element each")
