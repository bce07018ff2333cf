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


def test_arguments_not_named_are_held_fixed_not_turned_into_sliders(monkeypatch):
    monkeypatch.setenv("COURSE_HEADLESS", "0")
    import ipywidgets

    shown = {}
    monkeypatch.setattr(ipywidgets, "interact", lambda fn, **kw: shown.update(kw) or fn)
    widgets.interact(lambda n=4, block=4: None, n=(1, 8, 1))
    assert isinstance(shown["block"], ipywidgets.fixed) and shown["block"].value == 4


@pytest.mark.parametrize(
    "controls, message",
    [
        ({"T": (5.0, 0.1, 0.1)}, "empty range"),
        ({"T": (2.0, 2.0)}, "outside the slider's range"),
        ({"T": (2.0, 5.0, 0.1)}, "outside the slider's range"),
        ({"T": []}, "no options"),
        ({"T": [0.5, 2.0]}, "not one of the options"),
    ],
)
def test_a_control_must_hold_its_default(controls, message):
    with pytest.raises(ValueError, match=message):
        widgets.interact(lambda T=1.0: None, **controls)


def test_sweep_moves_every_control_to_both_ends_through_ipywidgets():
    seen = []
    n = widgets.sweep(
        lambda n=4, kind="a", flag=False, block=3: seen.append((n, kind, flag, block)),
        n=(1, 8, 1),
        kind=["a", "b"],
        flag=False,
    )
    assert n == len(seen) == 2 + 2 + 2 + 2
    assert (
        {s[0] for s in seen} == {1, 4, 8}
        and {s[1] for s in seen} == {"a", "b"}
        and {s[2] for s in seen} == {False, True}
    )
    assert {s[3] for s in seen} == {3}  # the fixed argument never moves


def test_sweep_names_the_setting_that_crashes():
    def show(window=2, n_blocks=8):
        if window == 0:
            raise ValueError("window must be positive")

    with pytest.raises(RuntimeError, match=r"show\(\{'window': 0, 'n_blocks': 8\}\) raised ValueError"):
        widgets.sweep(show, window=(0, 4, 1), n_blocks=(4, 32, 1))


def test_headless_sweeps_when_asked(monkeypatch):
    monkeypatch.setenv("COURSE_HEADLESS", "1")
    monkeypatch.setenv("COURSE_WIDGET_SWEEP", "1")
    calls = []
    widgets.interact(lambda d=256: calls.append(d), d=(1, 1024, 1))
    assert calls == [256, 1, 1024, 1, 1024]  # the default picture, each end, all at min, all at max


def test_a_one_value_range_is_held_fixed_not_shown(monkeypatch):
    monkeypatch.setenv("COURSE_HEADLESS", "0")
    import ipywidgets

    shown = {}
    monkeypatch.setattr(ipywidgets, "interact", lambda fn, **kw: shown.update(kw) or fn)
    widgets.interact(lambda sentence=0, layer=0: None, sentence=(0, 5), layer=(0, 0, 1))  # a one-layer model
    assert shown["sentence"] == (0, 5) and isinstance(shown["layer"], ipywidgets.fixed)
    seen = []
    widgets.sweep(lambda sentence=0, layer=0: seen.append(layer), sentence=(0, 5), layer=(0, 0, 1))
    assert set(seen) == {0}
