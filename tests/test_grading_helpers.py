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
    expect_choice,
    expect_dtype,
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


def test_a_mistake_is_named_only_where_the_input_tells_it_apart():
    nan = torch.full((2,), float("nan"))
    right, wrong = torch.tensor([0.2, 0.8]), torch.tensor([0.5, 0.5])
    with pytest.raises(GradingError) as err:  # an all-NaN mistake output does not "match" an all-NaN answer
        expect_close(nan, right, "w", mistakes={"inverted rescale": nan.clone()})
    assert "looks like" not in str(err.value) and "NaN" in str(err.value)
    with pytest.raises(GradingError) as err:  # two mistakes that agree here cannot be told apart: neither is named
        expect_close(wrong, right, "w", mistakes={"axis": wrong.clone(), "scale": wrong.clone()})
    assert "looks like" not in str(err.value)
    with pytest.raises(GradingError) as err:  # a "mistake" equal to the right answer on this input says nothing
        expect_equal([1, 3], [1, 2], "ids", mistakes={"off by one": [1, 2]})
    assert "looks like" not in str(err.value)
    with pytest.raises(GradingError, match=r"not right \(on rows of very different scales\)\. It looks like: axis"):
        expect_close(
            wrong, right, "w", mistakes={"axis": wrong.clone(), "scale": nan}, on="rows of very different scales"
        )


def test_call_reports_inputs_changed_in_place():
    def scale_in_place(x, factor):
        x *= factor
        return x

    with pytest.raises(GradingError, match="changed its input `x` in place"):
        call(scale_in_place, torch.ones(3), 2.0)
    with pytest.raises(GradingError, match="changed its input `words` in place"):
        call(lambda words: words.sort(), ["b", "a"], what="sort_words")
    assert call(scale_in_place, torch.ones(3), 2.0, may_change=("x",)).tolist() == [2.0, 2.0, 2.0]
    layer = torch.nn.Linear(2, 2)
    with pytest.raises(GradingError, match="`layer` in place"):
        call(lambda layer: layer.weight.data.zero_(), layer, what="zero")
    nan_in = torch.tensor([float("nan"), 1.0])
    assert torch.isnan(call(lambda x: x + 1, nan_in)[0])  # NaN inputs left alone are unchanged


def test_forbid_swaps_a_helper_wherever_the_answer_can_reach_it():
    import torch.nn.functional as F
    from course_utils import attention

    namespace = {"F": F, "torch": torch, "split": attention.split_heads}
    exec("def answer(x):\n    return F.softmax(x, -1)\n", namespace)
    with pytest.raises(GradingError, match="calls softmax, which is not allowed here"):
        call(namespace["answer"], torch.ones(2), forbidden=[F.softmax])
    exec("def answer2(x):\n    return torch.softmax(x, -1)\n", namespace)
    with pytest.raises(GradingError, match="calls softmax"):
        call(namespace["answer2"], torch.ones(2), forbidden=[torch.softmax])
    exec("def answer3(x):\n    return split(x, 2)\n", namespace)
    with pytest.raises(GradingError, match="calls split_heads"):
        call(namespace["answer3"], torch.ones(1, 2, 4), forbidden=[attention.split_heads])
    assert namespace["split"] is attention.split_heads and F.softmax(torch.zeros(2), -1)[0] == 0.5  # restored
    assert call(namespace["answer2"], torch.zeros(2), forbidden=[attention.split_heads])[0] == 0.5


def test_dtype_and_choice():
    expect_dtype(torch.zeros(2, dtype=torch.long), torch.long, "ids")
    with pytest.raises(GradingError, match="dtype torch.float32, expected torch.int64"):
        expect_dtype(torch.zeros(2), torch.long, "ids")
    expect_choice("b", "abc", "your prediction")
    with pytest.raises(GradingError, match="should be one of 'a', 'b', 'c'"):
        expect_choice(None, "abc", "your prediction")
    with pytest.raises(GradingError, match="not what the measurement shows. See the plot"):
        expect_choice("a", "abc", "your prediction", correct="b", why="See the plot.")


def test_call_checks_the_inputs_of_a_module_and_forbids_inside_a_class():
    class Doubler(torch.nn.Module):
        def forward(self, x):
            x.mul_(2)  # a careless in-place forward
            return x

    with pytest.raises(GradingError, match="changed its input `x` in place"):
        call(Doubler(), torch.ones(2), what="Doubler")
    with pytest.raises(GradingError, match="changed its input `argument 1` in place"):
        call(lambda *tensors: tensors[0].add_(1), torch.ones(2), what="add")
    namespace = {"torch": torch}
    exec("class Soft(torch.nn.Module):\n    def forward(self, x):\n        return torch.softmax(x, -1)\n", namespace)
    with pytest.raises(GradingError, match="calls softmax"):
        call(namespace["Soft"](), torch.ones(2), forbidden=[torch.softmax])
    from course_utils import attention

    namespace["split"] = attention.split_heads
    exec("class Splitter:\n    def __init__(self, x):\n        self.y = split(x, 2)\n", namespace)
    with pytest.raises(GradingError, match="calls split_heads"):
        call(namespace["Splitter"], torch.ones(1, 2, 4), forbidden=[attention.split_heads])
    assert namespace["split"] is attention.split_heads


def test_forbid_leaves_torch_as_it_found_it():
    before = dict(vars(torch.Tensor))
    with pytest.raises(GradingError, match="calls softmax"):
        call(lambda x: x.softmax(-1), torch.ones(2), forbidden=[torch.Tensor.softmax], what="soft")
    assert dict(vars(torch.Tensor)) == before and torch.ones(2).softmax(-1)[0] == 0.5


def test_forbid_a_method_refuses_calls_through_an_instance():
    from course_utils.attention import MultiHeadAttention

    mha = MultiHeadAttention(d_model=4, n_heads=2)
    x = torch.zeros(1, 2, 4)
    with pytest.raises(GradingError, match="calls MultiHeadAttention.forward, which is not allowed here"):
        call(lambda m: m(x, x, x), mha, what="mine", forbidden=[MultiHeadAttention.forward])
    assert "forward" in vars(MultiHeadAttention) and mha(x, x, x)[0].shape == (1, 2, 4)  # restored
