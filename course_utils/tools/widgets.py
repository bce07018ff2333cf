"""Widgets that degrade gracefully and cannot crash: sliders in JupyterLab, the default picture headless.

`interact(fn, T=(0.1, 5.0, 0.1))` is ipywidgets' `interact` with two differences:
- only the keywords named become controls; every other argument of `fn` is held at its
  default (ipywidgets alone turns any numeric default into a slider, e.g. a stray
  `block` slider from -4 to 12 that crashes at 0);
- each control is checked before it is shown: its range is not empty and holds `fn`'s default.
When a notebook runs with no one watching (papermill, CI, the slide build set
`COURSE_HEADLESS=1`), a slider draws nothing useful into a static page, so `fn` is called
once with its defaults and its figure lands in the output like any other cell's. With
`COURSE_WIDGET_SWEEP=1` as well (the notebook tests set it), every control is then moved
to each end of its range through the widget objects themselves, and any exception fails
the cell, naming the setting.
"""

from __future__ import annotations

import inspect
import os
from typing import Any, Callable


def headless() -> bool:
    """True when the notebook runs with no front end to move a slider (COURSE_HEADLESS=1)."""
    return os.environ.get("COURSE_HEADLESS", "0") == "1"


def interact(fn: Callable, **controls: Any) -> None:
    """Show `fn` with one control per keyword (ipywidgets abbreviations: (min, max[, step]), a list, a bool).

    Every controlled argument must have a default in `fn`: that is the value shown first
    and the one used headless. Returns None, so a cell ending in `interact(...)` shows the
    widget and its figure, not a `<function ...>` line.
    """
    _check(fn, controls)
    if headless():
        fn()
        if os.environ.get("COURSE_WIDGET_SWEEP", "0") == "1":
            sweep(fn, **controls)
        return None
    import ipywidgets

    ipywidgets.interact(fn, **_moving(controls), **_fixed(fn, controls))
    return None


def _check(fn: Callable, controls: dict) -> None:
    """Raise ValueError if a control names no argument, has no default, or has a range without the default."""
    params = inspect.signature(fn).parameters
    for name, spec in controls.items():
        if name not in params:
            raise ValueError(f"interact: {fn.__name__}() has no argument {name!r}; its arguments are {list(params)}")
        default = params[name].default
        if default is inspect.Parameter.empty:
            raise ValueError(
                f"interact: give {fn.__name__}'s argument {name!r} a default value; "
                "it is the value shown first and the one used when run headless"
            )
        if isinstance(spec, tuple) and len(spec) in (2, 3) and all(isinstance(v, (int, float)) for v in spec):
            low, high = spec[:2]
            if not low <= high:
                raise ValueError(f"interact: {name}={spec} is an empty range; give (min, max) with min <= max")
            if not low <= default <= high:
                raise ValueError(
                    f"interact: {fn.__name__}'s default {name}={default!r} lies outside the slider's range "
                    f"{low}..{high}; widen the range or change the default"
                )
        elif isinstance(spec, (list, tuple)) and not isinstance(spec, str):
            if len(spec) == 0:
                raise ValueError(f"interact: {name} has no options; give a non-empty list")
            options = [o[1] if isinstance(o, tuple) and len(o) == 2 else o for o in spec]
            if default not in options:
                raise ValueError(
                    f"interact: {fn.__name__}'s default {name}={default!r} is not one of the options {options}"
                )


def _one_value(spec: Any) -> bool:
    """True for a slider whose range holds one value, e.g. (0, 0): the layer slider of a one-layer model."""
    return (
        isinstance(spec, tuple)
        and len(spec) in (2, 3)
        and all(isinstance(v, (int, float)) for v in spec)
        and spec[0] == spec[1]
    )


def _fixed(fn: Callable, controls: dict) -> dict:
    """Every argument of `fn` that is not a moving control, held at its default (never a slider)."""
    import ipywidgets

    params = inspect.signature(fn).parameters
    return {
        name: ipywidgets.fixed(p.default)
        for name, p in params.items()
        if (name not in controls or _one_value(controls[name])) and p.default is not inspect.Parameter.empty
    }


def _moving(controls: dict) -> dict:
    """The controls that can move: a one-value range is shown as nothing, not as a slider stuck in place."""
    return {name: spec for name, spec in controls.items() if not _one_value(spec)}


def _ends(widget) -> list:
    """The values worth trying on one control: both ends of a slider, every option of a list, both of a box."""
    if hasattr(widget, "options"):
        return (
            [value for _, value in widget._options_full] if hasattr(widget, "_options_full") else list(widget.options)
        )
    if hasattr(widget, "min") and hasattr(widget, "max"):
        return [widget.min, widget.max]
    if isinstance(widget.value, bool):
        return [False, True]
    return [widget.value]


def sweep(fn: Callable, **controls: Any) -> int:
    """Call `fn` with each control, one at a time, at each end of its range, then all at min and all at max.

    The controls are built by ipywidgets itself (the same objects a student moves), so a
    range ipywidgets derives wrongly is caught too. Figures and printed output are
    swallowed. Returns how many settings were tried; raises RuntimeError naming the
    setting that failed.
    """
    import ipywidgets
    import matplotlib.pyplot as plt
    from IPython.utils.capture import capture_output

    _check(fn, controls)
    form = ipywidgets.interactive(fn, {"manual": True}, **_moving(controls), **_fixed(fn, controls))
    knobs = {w.description: w for w in form.kwargs_widgets if not isinstance(w, ipywidgets.fixed)}
    defaults = {name: w.value for name, w in knobs.items()}
    fixed = {name: p.default for name, p in inspect.signature(fn).parameters.items() if name not in knobs}
    settings = [{**defaults, name: value} for name, w in knobs.items() for value in _ends(w)]
    settings += [{name: _ends(w)[0] for name, w in knobs.items()}, {name: _ends(w)[-1] for name, w in knobs.items()}]
    for setting in settings:
        try:
            with capture_output():
                fn(**fixed, **setting)
                plt.close("all")
        except Exception as e:
            raise RuntimeError(
                f"{fn.__name__}({setting}) raised {type(e).__name__}: {e}; fix the function or narrow that control's range"
            ) from e
    return len(settings)
