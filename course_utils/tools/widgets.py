"""Widgets that degrade gracefully: sliders in JupyterLab, the default picture when run headless.

`interact(fn, T=(0.1, 5.0, 0.1))` is ipywidgets' `interact`: the sliders start at
`fn`'s default arguments. When a notebook runs with no one watching (papermill,
CI, the slide build set `COURSE_HEADLESS=1`), a slider draws nothing useful into a
static page, so `fn` is simply called once with its defaults and its figure lands
in the output like any other cell's.
"""

from __future__ import annotations

import inspect
import os
from typing import Any, Callable


def headless() -> bool:
    """True when the notebook runs with no front end to move a slider (COURSE_HEADLESS=1)."""
    return os.environ.get("COURSE_HEADLESS", "0") == "1"


def interact(fn: Callable, **controls: Any) -> None:
    """Show `fn` with one control per keyword (ipywidgets abbreviations: (min, max, step), a list, a bool).

    Every controlled argument must have a default in `fn`: that is the value shown first
    and the one used headless. Returns None, so a cell ending in `interact(...)` shows the
    widget and its figure, not a `<function ...>` line.
    """
    params = inspect.signature(fn).parameters
    for name in controls:
        if name not in params:
            raise ValueError(f"interact: {fn.__name__}() has no argument {name!r}; its arguments are {list(params)}")
        if params[name].default is inspect.Parameter.empty:
            raise ValueError(
                f"interact: give {fn.__name__}'s argument {name!r} a default value; "
                "it is the value shown first and the one used when run headless"
            )
    if headless():
        fn()
        return None
    import ipywidgets

    ipywidgets.interact(fn, **controls)
    return None
