"""Turning next-token logits into a choice: temperature, top-k, top-p (nucleus), greedy.

A language model gives a distribution over the next token; how we draw from it changes
the text as much as the model does. Every function works on the last dimension of a
(..., V) tensor of logits and returns logits (with -inf for removed tokens), so they
compose: temperature first, then top-k, then top-p, then one softmax and one draw,
the order `transformers` applies them in.

    >>> logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    >>> top_k_filter(logits, 2)
    tensor([2., 1., -inf, -inf])

Concessions: ties at the top-k boundary keep every tied token (like `transformers`),
so a few more than k may survive; top-p always keeps the most likely token.
"""

from __future__ import annotations

from numbers import Real
from typing import Optional

import torch

from course_utils.checks import check_int, check_number, check_tensor

__all__ = ["apply_temperature", "top_k_filter", "top_p_filter", "filter_logits", "sample_next"]


def _check_logits(fn: str, logits) -> None:
    """A floating-point (..., V) tensor with V >= 1: what every filter works on."""
    check_tensor(fn, "logits", logits, min_dim=1, dtype="float", shape="(..., V)")
    if logits.shape[-1] < 1:
        raise ValueError(f"{fn}: logits must have shape (..., V) with V >= 1, got {tuple(logits.shape)}")


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """logits / temperature: T < 1 sharpens the softmax, T > 1 flattens it, T = 1 leaves it.

    Dividing (not multiplying) is what makes T -> 0 the argmax and T -> inf the uniform choice:
    softmax(z / T)_i is proportional to p_i ** (1 / T).

    >>> apply_temperature(torch.tensor([2.0, 0.0]), 0.5)
    tensor([4., 0.])
    """
    _check_logits("apply_temperature", logits)
    if isinstance(temperature, Real) and not isinstance(temperature, bool) and temperature == 0:
        raise ValueError(
            "apply_temperature: temperature must be a number > 0; for 0 use greedy decoding "
            "(sample_next(logits, temperature=0))"
        )
    check_number("apply_temperature", "temperature", temperature, low=0, low_open=True)
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row, set the rest to -inf (k >= V keeps all)."""
    _check_logits("top_k_filter", logits)
    k = min(check_int("top_k_filter", "k", k), logits.shape[-1])
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1) the k-th largest
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus sampling: keep the smallest set of most likely tokens whose probabilities sum to >= p.

    Sorted by probability, a token is kept if the mass of the tokens *before* it is < p,
    so the most likely token always survives and the kept set just reaches p.

    >>> top_p_filter(torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05])), 0.8)   # 0.5 + 0.3 >= 0.8
    tensor([-0.6931, -1.2040,    -inf,    -inf])
    """
    _check_logits("top_p_filter", logits)
    check_number("top_p_filter", "p", p, low=0, high=1, low_open=True)
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # (..., V) mass of the better tokens
    remove_sorted = mass_before >= p
    remove = torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)  # back to vocabulary order
    return logits.masked_fill(remove, float("-inf"))


def filter_logits(
    logits: torch.Tensor, temperature: float = 1.0, top_k: Optional[int] = None, top_p: Optional[float] = None
) -> torch.Tensor:
    """Temperature, then top-k, then top-p: the logits a sampler draws from (softmax of them)."""
    logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return logits


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Draw one token id per row of (B, V) logits -> (B, 1). temperature = 0 means greedy (argmax).

    >>> sample_next(torch.tensor([[0.0, 5.0, 1.0]]), temperature=0)
    tensor([[1]])
    """
    _check_logits("sample_next", logits)
    check_tensor("sample_next", "logits", logits, dim=2, shape="(B, V)")
    if isinstance(temperature, Real) and not isinstance(temperature, bool) and temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    probs = filter_logits(logits, temperature, top_k, top_p).softmax(dim=-1)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)
