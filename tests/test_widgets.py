import pytest
from course_utils.tools import widgets


def test_headless_calls_once_with_defaults(monkeypatch):
    monkeypatch.setenv("COURSE_HEADLESS", "1")
    calls = []
    assert widgets.interact(lambda T=1.5: calls.append(T), T=(0.1, 5.0, 0.1)) is None
    assert calls == [1.5]


def test_interactive_shows_a_slider_starting_at_the_default(monkeypatch):
    monkeypatch.setenv("COURSE_HEADLESS", "0")
    import ipywidgets

    shown = {}
    monkeypatch.setattr(ipywidgets, "interact", lambda fn, **kw: shown.update(kw) or fn)
    assert widgets.interact(lambda T=1.5: None, T=(0.1, 5.0, 0.1)) is None  # no "<function ...>" echo
    assert shown == {"T": (0.1, 5.0, 0.1)}


def test_controls_must_name_arguments_with_defaults():
    with pytest.raises(ValueError, match="has no argument 'x'"):
        widgets.interact(lambda T=1.0: None, x=(0, 1))
    with pytest.raises(ValueError, match="give .* a default"):
        widgets.interact(lambda T: None, T=(0, 1))
