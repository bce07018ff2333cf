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

A mistake is named only where this input tells it apart: its output must differ from
the right answer and from every other listed mistake's, and must not be all NaN/inf
(an answer that is all NaN "matches" any mistake that overflows everywhere). Otherwise
the message says which property failed (shape, dtype, the largest error) and, through
`on=`, on what kind of input, without printing a hidden input.

`call` also checks that the student's function left its inputs unchanged and, with
`forbidden=`, that it did not use a helper the exercise asks them to write themselves.
`expect_choice` grades a "predict before you measure" question.

`use_or_reference` is for the cells after an exercise: they call the student's function
while it works and the course's own version while it still raises `NotImplementedError`,
so a student copy runs top to bottom (every figure drawn) before any exercise is done.
"""

from __future__ import annotations

import copy
import inspect
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch


class GradingError(AssertionError):
    """A graded test failed; the message says what to look at."""


def _as_array(x: Any) -> np.ndarray | None:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy() if x.dtype != torch.bool else x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    return None


def _close(a: Any, b: Any, atol: float, rtol: float, equal_nan: bool = False) -> bool:
    x, y = _as_array(a), _as_array(b)
    if x is None or y is None:
        return a == b
    return x.shape == y.shape and bool(np.allclose(x, y, atol=atol, rtol=rtol, equal_nan=equal_nan))


def _snapshot(x: Any) -> Any:
    """A copy of a tensor, array, list, dict or module's weights, to compare with after a call (None: not checked)."""
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, torch.nn.Module):
        return {k: v.detach().clone() for k, v in x.state_dict().items()}
    if isinstance(x, (list, dict, set)):
        return copy.deepcopy(x)
    return None


def _same(before: Any, x: Any) -> bool:
    """Is `x` still what `_snapshot` saw? Tensors compare exactly, NaN equal to NaN."""
    if isinstance(x, torch.nn.Module):
        x = {k: v.detach() for k, v in x.state_dict().items()}
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if before.shape != x.shape or before.dtype != x.dtype:
            return False
        if x.is_floating_point():
            return bool(torch.equal(before.isnan(), x.isnan()) and torch.equal(before.nan_to_num(0), x.nan_to_num(0)))
        return bool(torch.equal(before, x))
    if isinstance(x, np.ndarray):
        return before.shape == x.shape and bool(np.array_equal(before, x, equal_nan=x.dtype.kind in "fc"))
    if isinstance(x, dict):
        return isinstance(before, dict) and before.keys() == x.keys() and all(_same(before[k], x[k]) for k in x)
    if isinstance(x, (list, tuple)):
        return type(before) is type(x) and len(before) == len(x) and all(map(_same, before, x))
    try:
        return bool(before == x)
    except (TypeError, ValueError, RuntimeError):
        return False


def _argument_names(fn: Callable, args: tuple, kwargs: dict) -> list[tuple[str, Any]]:
    """[(name, value)] of every argument of a call, by the parameter names of `fn` (of its forward for a module)."""
    target = fn.forward if isinstance(fn, torch.nn.Module) else fn
    try:
        params = inspect.signature(target).parameters
        bound = inspect.signature(target).bind(*args, **kwargs).arguments
    except (TypeError, ValueError):
        return [(f"argument {i + 1}", a) for i, a in enumerate(args)] + list(kwargs.items())
    named = []
    for name, value in bound.items():
        kind = params[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:  # *args: one entry per value
            named += [(f"argument {i + 1}", a) for i, a in enumerate(value, start=len(named))]
        elif kind is inspect.Parameter.VAR_KEYWORD:
            named += list(value.items())
        else:
            named.append((name, value))
    return named


def _scope(fn: Any) -> dict:
    """The globals the student's code runs with: a function's, a class's methods', a module instance's class's."""
    if isinstance(fn, torch.nn.Module):
        fn = type(fn)
    if inspect.isclass(fn):
        for member in vars(fn).values():
            if inspect.isfunction(member):
                return member.__globals__
        return {}
    return getattr(fn, "__globals__", {})


@contextmanager
def forbid(fn: Callable, helpers: Iterable[Callable], reason: str = "this exercise asks you to write it yourself"):
    """While the block runs, every helper in `helpers` raises a GradingError that names it.

    Each helper is swapped wherever the student could reach it by name: its module's
    attribute, the public torch namespaces (`torch.softmax`, `F.softmax`, `Tensor.softmax`)
    and any name in the student function's globals bound to it
    (`from course_utils.attention import split_heads`). A method (`MultiHeadAttention.forward`)
    is swapped on its class, so `mha(...)` refuses too.
    """
    swaps = []  # (namespace, key, original)
    for helper in helpers:
        name = (
            _method_owner(helper) + "." + helper.__name__
            if _method_owner(helper)
            else getattr(helper, "__name__", repr(helper))
        )

        def refuse(*args, _name=name, **kwargs):
            raise GradingError(f"your answer calls {_name}, which is not allowed here: {reason}.")

        for space, key in _places(fn, helper):
            own = key in space if isinstance(space, dict) else key in vars(space)  # else inherited (Tensor.softmax)
            swaps.append((space, key, helper if own else _INHERITED))
            _assign(space, key, refuse)
    try:
        yield
    finally:
        for space, key, original in reversed(swaps):
            _assign(space, key, original)


def _places(fn: Callable, helper: Callable) -> list[tuple[Any, str]]:
    """Every (namespace, name) through which `fn` could reach `helper`."""
    name = getattr(helper, "__name__", None)
    module = sys.modules.get(getattr(helper, "__module__", None) or "")
    owner = _method_owner(helper)
    spaces = [module, getattr(module, owner, None) if owner else None, torch, torch.nn.functional, torch.Tensor]
    found = [(space, name) for space in spaces if space is not None and name and getattr(space, name, None) is helper]
    scope = _scope(fn)
    found += [(scope, key) for key, value in scope.items() if value is helper]
    return list({(id(space), key): (space, key) for space, key in found}.values())  # each place once


def _method_owner(helper: Callable) -> str:
    """ "MultiHeadAttention" for a method written in Python on a class of its module, else ""."""
    owner = getattr(helper, "__qualname__", "").rpartition(".")[0]
    return owner if inspect.isfunction(helper) and owner and "<" not in owner else ""


_INHERITED = object()  # restore by deleting: the attribute came from a base class


def _assign(space: Any, key: str, value: Any) -> None:
    if value is _INHERITED:
        delattr(space, key)
    elif isinstance(space, dict):
        space[key] = value
    else:
        setattr(space, key, value)


def call(
    fn: Callable,
    *args,
    what: str | None = None,
    may_change: Iterable[str] = (),
    forbidden: Iterable[Callable] = (),
    **kwargs,
) -> Any:
    """Call the student's function; turn "not attempted yet", crashes and changed inputs into readable failures.

    Every tensor, array, list, dict or module argument must be unchanged afterwards,
    except those named in `may_change`. The helpers in `forbidden` raise while it runs.
    """
    name = what or getattr(fn, "__name__", "your function")
    if not callable(fn):
        raise GradingError(f"{name} should be a function, but it is a {type(fn).__name__}.")
    named = [(k, v, _snapshot(v)) for k, v in _argument_names(fn, args, kwargs) if k not in set(may_change)]
    try:
        with forbid(fn, forbidden):
            result = fn(*args, **kwargs)
    except NotImplementedError:
        raise GradingError(
            f"{name} is not written yet: replace `raise NotImplementedError()` with your code."
        ) from None
    except GradingError:
        raise
    except Exception as e:  # a crash in the student's code: say which, keep it short
        raise GradingError(f"{name} raised {type(e).__name__}: {e}") from None
    for key, value, before in named:
        if before is not None and not _same(before, value):
            raise GradingError(
                f"{name} changed its input `{key}` in place. Leave inputs as they are: "
                "work on a copy (x = x.clone()) or use out-of-place operations (x + y, not x += y or x.add_(y))."
            )
    return result


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


def _telling(mistakes: Mapping[str, Any] | None, expected: Any, same: Callable[[Any, Any], bool]) -> dict:
    """The mistakes this input tells apart: output not all NaN/inf, unlike the right answer and every other mistake."""
    kept = {}
    items = list((mistakes or {}).items())
    for message, wrong in items:
        w = _as_array(wrong)
        if w is not None and w.dtype.kind in "fc" and w.size and not np.isfinite(w).any():
            continue  # "matches" every answer that blows up: no evidence of this mistake
        if same(wrong, expected) or any(same(wrong, other) for m, other in items if m != message):
            continue
        kept[message] = wrong
    return kept


def _suffix(on: str | None) -> str:
    return f" (on {on})" if on else ""


def expect_dtype(actual: Any, dtype: Any, what: str) -> None:
    """Fail unless `actual` is a tensor or array of `dtype` (e.g. torch.long for token ids, torch.bool for masks)."""
    got = getattr(actual, "dtype", None)
    if got is None:
        raise GradingError(f"{what} should be a tensor of dtype {dtype}, but it is a {type(actual).__name__}.")
    if got != dtype:
        raise GradingError(f"{what} has dtype {got}, expected {dtype}.")


def expect_close(
    actual: Any,
    expected: Any,
    what: str,
    *,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    mistakes: Mapping[str, Any] | None = None,
    on: str | None = None,
) -> None:
    """Pass if `actual` equals `expected` within tolerance; otherwise name the mistake it reproduces, if any.

    mistakes: {"what the student probably did": output that mistake produces}.
    on: what kind of input this was ("rows of very different scales"), for the message.
    """
    x, y = _as_array(actual), _as_array(expected)
    if y is not None and x is None:
        raise GradingError(f"{what} should be a tensor or array, but it is a {type(actual).__name__}.")
    if x is not None and y is not None and x.shape != y.shape:
        expect_shape(actual, y.shape, what)
    if _close(actual, expected, atol, rtol):
        return
    same = lambda a, b: _close(a, b, atol, rtol, equal_nan=True)  # a mistake may produce NaN where it overflows
    for message, wrong in _telling(mistakes, expected, same).items():
        if same(actual, wrong):
            raise GradingError(f"{what} is not right{_suffix(on)}. It looks like: {message}.")
    if x is not None:
        if not np.isfinite(x).all():
            raise GradingError(
                f"{what} contains NaN or inf{_suffix(on)}. Look for a division by zero or exp of a huge number."
            )
        err = np.abs(x - y)
        idx = np.unravel_index(int(err.argmax()), err.shape) if err.ndim else ()
        raise GradingError(
            f"{what} is not right{_suffix(on)}: the largest error is {err.max():.3g} "
            f"at index {tuple(int(i) for i in idx)}."
        )
    raise GradingError(f"{what} is not right{_suffix(on)}: got {actual!r}.")


def expect_equal(
    actual: Any, expected: Any, what: str, *, mistakes: Mapping[str, Any] | None = None, on: str | None = None
) -> None:
    """Exact equality for lists, strings, numbers and boolean tensors, with known mistakes named."""
    x, y = _as_array(actual), _as_array(expected)
    if x is not None and y is not None:
        if x.shape != y.shape:
            expect_shape(actual, y.shape, what)

        def same(a, b):
            p, q = _as_array(a), _as_array(b)
            return p is not None and q is not None and p.shape == q.shape and bool((p == q).all())
    else:

        def same(a, b):
            try:
                return bool(a == b)
            except (TypeError, ValueError, RuntimeError):
                return False

    if same(actual, expected):
        return
    for message, wrong in _telling(mistakes, expected, same).items():
        if same(actual, wrong):
            raise GradingError(f"{what} is not right{_suffix(on)}. It looks like: {message}.")
    if x is not None and y is not None:
        bad = np.argwhere(x != y)
        raise GradingError(
            f"{what} is not right{_suffix(on)}: {len(bad)} entries differ, "
            f"the first at index {tuple(int(i) for i in bad[0])}."
        )
    raise GradingError(f"{what} is not right{_suffix(on)}: got {_short(actual)}.")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def expect_choice(answer: Any, choices: Iterable[str], what: str, correct: str | None = None, why: str = "") -> None:
    """Grade a "predict before you measure" answer: one of `choices`; with `correct` (hidden tests), the right one.

    why: one sentence for a wrong prediction, pointing at the measurement that settles it.
    """
    choices = list(choices)
    if answer not in choices:
        raise GradingError(f"{what} should be one of {', '.join(repr(c) for c in choices)}, got {_short(answer)}.")
    if correct is not None and answer != correct:
        raise GradingError(f"{what}: {answer!r} is not what the measurement shows. {why}".strip())


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
