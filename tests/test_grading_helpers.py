"""course_utils.tools.grading: right answers pass, known mistakes are named, other errors are located."""

import numpy as np
import pytest
import torch
from course_utils.tools.grading import (
    GradingError,
    call,
    expect,
    expect_close,
    expect_equal,
    expect_shape,
    use_or_reference,
)


def test_close_passes_within_tolerance():
    expect_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-7]), "x")


def test_known_mistake_is_named():
    with pytest.raises(GradingError, match="It looks like: wrong axis"):
        expect_close(
            torch.ones(2), torch.zeros(2), "x", mistakes={"scaled": torch.full((2,), 2.0), "wrong axis": torch.ones(2)}
        )


def test_unknown_error_is_located():
    with pytest.raises(GradingError, match=r"largest error is 5 at index \(1, 0\)"):
        expect_close(torch.tensor([[0.0], [5.0]]), torch.zeros(2, 1), "x")


def test_shape_mismatch_and_nan_and_type():
    with pytest.raises(GradingError, match=r"shape \(3,\), expected \(2,\)"):
        expect_close(torch.zeros(3), torch.zeros(2), "x")
    with pytest.raises(GradingError, match="NaN or inf"):
        expect_close(torch.tensor([float("nan")]), torch.zeros(1), "x")
    with pytest.raises(GradingError, match="should be a tensor"):
        expect_close([0.0], torch.zeros(1), "x")
    with pytest.raises(GradingError, match="should be a tensor"):
        expect_shape([1], (1,), "x")


def test_equal_for_lists_and_bool_tensors():
    expect_equal([("a", "b")], [("a", "b")], "merges")
    with pytest.raises(GradingError, match="It looks like: off by one"):
        expect_equal([1, 2], [1, 2, 3], "ids", mistakes={"off by one": [1, 2]})
    with pytest.raises(GradingError, match="1 entries differ, the first at index \\(0, 1\\)"):
        expect_equal(
            torch.eye(2, dtype=torch.bool) | torch.tensor([[False, True], [False, False]]),
            torch.eye(2, dtype=torch.bool),
            "mask",
        )
    expect_equal(np.arange(3), np.arange(3), "a")


def test_call_turns_stub_and_crash_into_messages():
    def stub(x):
        raise NotImplementedError()

    def crash(x):
        return x[10]

    with pytest.raises(GradingError, match="not written yet"):
        call(stub, 1)
    with pytest.raises(GradingError, match="crash raised IndexError"):
        call(crash, [1])
    with pytest.raises(GradingError, match="should be a function"):
        call(3)
    assert call(lambda x: x + 1, 1) == 2


def test_expect():
    expect(True, "never")
    with pytest.raises(GradingError, match="because"):
        expect(False, "because")
    assert issubclass(GradingError, AssertionError)


def test_use_or_reference_falls_back_once_with_one_line(capsys):
    calls = []

    def stub(x):
        calls.append(x)
        raise NotImplementedError()

    fn = use_or_reference(stub, lambda x: -x, "negate")
    assert [fn(1), fn(2), fn(3)] == [-1, -2, -3]
    assert calls == [1], "once it fell back, the stub is not called again"
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "negate is not written yet" in out
    assert fn.__name__ == "negate"


def test_use_or_reference_prefers_a_written_answer_and_keeps_its_errors(capsys):
    assert use_or_reference(lambda x: x + 1, lambda x: 0)(1) == 2
    assert capsys.readouterr().out == ""

    def crash(x):
        return x[10]

    with pytest.raises(IndexError):  # a bug in the answer is not hidden behind the reference
        use_or_reference(crash, lambda x: 0)([1])
