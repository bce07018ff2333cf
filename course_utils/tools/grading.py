"""Helpers for graded test cells: turn a failed comparison into a diagnosis a student can act on.

A bare `assert torch.allclose(out, ref)` tells a student only "wrong". These helpers
compare with a reference and, when the answer is off, check it against the outputs
of known mistakes (softmax over the wrong axis, a missing 1/sqrt(d), a mask applied
after the softmax, ...) so the message names what to look at:

    >>> try:
    ...     expect_close(np.array([0.5, 0.5]), np.array([0.2, 0.8]), "weights",
    ...                  mistakes={"softmax over the wrong axis": np.array([0.5, 0.5])})
    ... except GradingError as e:
    ...     print(e)
    weights is not right. It looks like: softmax over the wrong axis.

Every failure raises `GradingError`, an AssertionError, so nbgrader counts it as a
failed test. Messages are one or two sentences and never quote the reference.

`use_or_reference` is for the cells after an exercise: they call the student's function
while it works and the course's own version while it still raises `NotImplementedError`,
so a student copy runs top to bottom (every figure drawn) before any exercise is done.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np


class GradingError(AssertionError):
    """A graded test failed; the message says what to look at."""


def _as_array(x: Any) -> np.ndarray | None:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            return x.detach().cpu().double().numpy() if x.dtype != torch.bool else x.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    if isinstance(x, np.ndarray):
        return x
    return None


def _close(a: Any, b: Any, atol: float, rtol: float, equal_nan: bool = False) -> bool:
    x, y = _as_array(a), _as_array(b)
    if x is None or y is None:
        return a == b
    return x.shape == y.shape and bool(np.allclose(x, y, atol=atol, rtol=rtol, equal_nan=equal_nan))


def call(fn: Callable, *args, what: str | None = None, **kwargs) -> Any:
    """Call the student's function; turn "not attempted yet" and crashes into a readable failure."""
    name = what or getattr(fn, "__name__", "your function")
    if not callable(fn):
        raise GradingError(f"{name} should be a function, but it is a {type(fn).__name__}.")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise GradingError(
            f"{name} is not written yet: replace `raise NotImplementedError()` with your code."
        ) from None
    except GradingError:
        raise
    except Exception as e:  # a crash in the student's code: say which, keep it short
        raise GradingError(f"{name} raised {type(e).__name__}: {e}") from None


def expect_shape(actual: Any, shape: tuple, what: str) -> None:
    """Fail with the shapes side by side unless `actual.shape == shape`."""
    got = getattr(actual, "shape", None)
    if got is None:
        raise GradingError(f"{what} should be a tensor of shape {tuple(shape)}, but it is a {type(actual).__name__}.")
    if tuple(got) != tuple(shape):
        raise GradingError(
            f"{what} has shape {tuple(got)}, expected {tuple(shape)}. "
            "Check which dimensions you transpose, reshape or reduce."
        )


def expect_close(
    actual: Any,
    expected: Any,
    what: str,
    *,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    mistakes: Mapping[str, Any] | None = None,
) -> None:
    """Pass if `actual` equals `expected` within tolerance; otherwise name the closest known mistake.

    mistakes: {"what the student probably did": output that mistake produces}.
    """
    x, y = _as_array(actual), _as_array(expected)
    if y is not None and x is None:
        raise GradingError(f"{what} should be a tensor or array, but it is a {type(actual).__name__}.")
    if x is not None and y is not None and x.shape != y.shape:
        expect_shape(actual, y.shape, what)
    if _close(actual, expected, atol, rtol):
        return
    for message, wrong in (mistakes or {}).items():
        if _close(actual, wrong, atol, rtol, equal_nan=True):  # a mistake may produce NaN where it overflows
            raise GradingError(f"{what} is not right. It looks like: {message}.")
    if x is not None:
        if not np.isfinite(x).all():
            raise GradingError(f"{what} contains NaN or inf. Look for a division by zero or exp of a huge number.")
        err = np.abs(x - y)
        idx = np.unravel_index(int(err.argmax()), err.shape) if err.ndim else ()
        raise GradingError(
            f"{what} is not right: the largest error is {err.max():.3g} at index {tuple(int(i) for i in idx)}."
        )
    raise GradingError(f"{what} is not right: got {actual!r}.")


def expect_equal(actual: Any, expected: Any, what: str, *, mistakes: Mapping[str, Any] | None = None) -> None:
    """Exact equality for lists, strings, numbers and boolean tensors, with known mistakes named."""
    x, y = _as_array(actual), _as_array(expected)
    if x is not None and y is not None:
        if x.shape != y.shape:
            expect_shape(actual, y.shape, what)
        same = lambda a, b: (
            _as_array(a) is not None
            and _as_array(a).shape == _as_array(b).shape
            and bool((_as_array(a) == _as_array(b)).all())
        )
    else:
        same = lambda a, b: a == b
    if same(actual, expected):
        return
    for message, wrong in (mistakes or {}).items():
        if same(actual, wrong):
            raise GradingError(f"{what} is not right. It looks like: {message}.")
    if x is not None and y is not None:
        bad = np.argwhere(x != y)
        raise GradingError(
            f"{what} is not right: {len(bad)} entries differ, the first at index {tuple(int(i) for i in bad[0])}."
        )
    raise GradingError(f"{what} is not right: got {actual!r}.")


def expect(condition: bool, message: str) -> None:
    """A plain check with a student-facing message."""
    if not condition:
        raise GradingError(message)


def use_or_reference(yours: Callable, reference: Callable, name: str | None = None) -> Callable:
    """`yours` while it is written; `reference` (with one printed line) once it raises NotImplementedError.

    A student copy's later cells use an exercise's function; wrapped in this, they still
    run (and draw) before the exercise is done. Only "not written yet" falls back: any
    other error of `yours` still surfaces, and a working answer is always the one used.

    >>> def stub(x):
    ...     raise NotImplementedError()
    >>> double = use_or_reference(stub, lambda x: 2 * x, "double")
    >>> double(3), double(4)
    double is not written yet (the exercise above): using the course's reference instead.
    (6, 8)
    """
    label = name or getattr(yours, "__name__", "your function")
    fell_back = False

    def chosen(*args, **kwargs):
        nonlocal fell_back
        if not fell_back:
            try:
                return yours(*args, **kwargs)
            except NotImplementedError:
                fell_back = True
                print(f"{label} is not written yet (the exercise above): using the course's reference instead.")
        return reference(*args, **kwargs)

    chosen.__name__ = chosen.__qualname__ = label
    return chosen
