"""Argument checks shared by every module: one message per mistake, naming the function, the argument,
what was expected and what came.

Every check takes `(fn, name, value, ...)` in that order, raises `TypeError` for the wrong kind of
value and `ValueError` for a value out of range, and returns the value (so `n = check_int(...)` reads
as a conversion). `bool` is never accepted as a number, although Python counts it as an int:
`n_heads=True` is a mistake, not 1.

>>> check_int("f", "n_heads", 4)
4
>>> check_int("f", "n_heads", 0)
Traceback (most recent call last):
...
ValueError: f: n_heads must be an int >= 1, got 0
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, Iterable

import torch

__all__ = ["check_int", "check_number", "check_fields", "check_choice", "check_callable", "check_tensor"]


def _kind(value: Any) -> str:
    """'Tensor of shape (2, 3) and dtype torch.float32', 'str ('a')', ...: what came, for a message."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    return f"{type(value).__name__} ({value!r})"


def check_int(fn: str, name: str, value: Any, low: int | None = 1, high: int | None = None) -> int:
    """An int in [low, high] (either bound None: open). Python ints and numpy/torch integer scalars pass."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{fn}: {name} must be an int, got {_kind(value)}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        span = (
            f"in [{low}, {high}]"
            if low is not None and high is not None
            else f">= {low}"
            if low is not None
            else f"<= {high}"
        )
        raise ValueError(f"{fn}: {name} must be an int {span}, got {value}")
    return value


def check_number(
    fn: str,
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real number with low <= value <= high (`low_open`/`high_open`: strict). Returns a float.

    >>> check_number("f", "dropout", 0.1, low=0, high=1, high_open=True)
    0.1
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{fn}: {name} must be a number, got {_kind(value)}")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or too_low or too_high:
        left = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        right = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
        span = " and ".join(s for s in (left, right) if s)
        raise ValueError(f"{fn}: {name} must be {'a number ' + span if span else 'a finite number'}, got {value}")
    return value


def check_fields(fn: str, obj: Any, names: Iterable[str], low: int | None = 1) -> None:
    """check_int on several attributes of a config dataclass: the loop every `__post_init__` needs."""
    for name in names:
        check_int(fn, name, getattr(obj, name), low)


def check_choice(fn: str, name: str, value: Any, choices: Iterable[Any]) -> Any:
    """One of `choices`; the message lists them.

    >>> check_choice("f", "activation", "relu", ("relu", "gelu"))
    'relu'
    """
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{fn}: {name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_callable(fn: str, name: str, value: Any) -> Any:
    """Something that can be called (a function, a lambda, a module)."""
    if not callable(value):
        raise TypeError(f"{fn}: {name} must be callable (e.g. a function or a lambda), got {_kind(value)}")
    return value


def check_tensor(
    fn: str,
    name: str,
    value: Any,
    dim: int | None = None,
    min_dim: int | None = None,
    dtype: str | None = None,
    shape: str = "",
) -> torch.Tensor:
    """A torch.Tensor with `dim` (or at least `min_dim`) dimensions and a dtype kind.

    dtype: None (any), "float" (floating point), "int" (an integer dtype, not bool), "bool".
    shape: the expected shape in words for the message, e.g. "(B, T)".
    """
    want = f"a {shape + ' ' if shape else ''}torch.Tensor"
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be {want}, got {_kind(value)}")
    if (dim is not None and value.dim() != dim) or (min_dim is not None and value.dim() < min_dim):
        need = f"{dim} dimensions" if dim is not None else f"at least {min_dim} dimensions"
        raise ValueError(f"{fn}: {name} must be {want} with {need}, got shape {tuple(value.shape)}")
    ok = {
        None: True,
        "float": value.is_floating_point(),
        "bool": value.dtype == torch.bool,
        "int": not value.is_floating_point() and not value.is_complex() and value.dtype != torch.bool,
    }
    if dtype not in ok:
        raise ValueError(f"check_tensor: dtype must be None, 'float', 'int' or 'bool', got {dtype!r}")
    if not ok[dtype]:
        words = {
            "float": "a floating-point dtype",
            "int": "an integer dtype (e.g. torch.long)",
            "bool": "dtype torch.bool",
        }
        raise TypeError(f"{fn}: {name} must have {words[dtype]}, got {value.dtype}")
    return value
