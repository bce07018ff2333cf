"""Every exercise of every notebook, discovered from nbgrader metadata, checked without a kernel.

For each graded test cell, its answer cell is the nearest solution cell above it. In a
namespace prepared by the notebook's `parameters` and `setup` cells (SMOKE = True):
- the solution passes the tests (visible and hidden);
- the student version (nbgrader's ClearSolutions / ClearHiddenTests) fails its visible tests;
- every wrong answer in tests/wrong_answers/<notebook>/<answer grade_id>/*.py (at least
  two) fails, and the message contains the text after `# expect:` on its first line.
So a test cell may use only what those two cells and its answer cell define.
"""

from __future__ import annotations

import ast
import copy
import functools
from pathlib import Path

import nbformat
import pytest
import torch
from course_utils.tools import grading
from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions
from notebook_runner import NOTEBOOKS, ROOT

WRONG = ROOT / "tests" / "wrong_answers"


def exercises(path: Path):
    """(answer cell, test cell) pairs of a notebook."""
    cells = nbformat.read(path, as_version=4).cells
    pairs, answer = [], None
    for c in cells:
        meta = c.metadata.get("nbgrader", {})
        if meta.get("solution"):
            answer = c
        if meta.get("grade") and c.cell_type == "code":
            assert answer is not None, f"{path.name}: graded cell {meta['grade_id']} has no answer cell above it"
            pairs.append((answer, c))
    return cells, pairs


CASES = [
    (p, a.metadata["nbgrader"]["grade_id"], t.metadata["nbgrader"]["grade_id"])
    for p in NOTEBOOKS
    for a, t in exercises(p)[1]
]
_namespaces: dict[Path, dict] = {}


def base_namespace(path: Path) -> dict:
    """Globals after the parameters and setup cells, SMOKE forced on; computed once per notebook."""
    if path not in _namespaces:
        cells = nbformat.read(path, as_version=4).cells
        ns: dict = {"__name__": "__main__"}
        for tag in ("parameters", "setup"):
            for c in cells:
                if tag in c.metadata.get("tags", []):
                    exec(compile(c.source, f"<{path.stem}:{tag}>", "exec"), ns)
                    if tag == "parameters":
                        ns["SMOKE"] = True
        _namespaces[path] = ns
    return dict(_namespaces[path])


def student_version(nb_path: Path) -> dict[str, str]:
    """grade_id -> source of each nbgrader cell after nbgrader's own student-version preprocessors."""
    nb = nbformat.read(nb_path, as_version=4)
    resources = {}
    nb, resources = ClearSolutions().preprocess(copy.deepcopy(nb), resources)
    nb, resources = ClearHiddenTests().preprocess(nb, resources)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells if "nbgrader" in c.metadata}


def run(ns: dict, source: str, label: str) -> None:
    exec(compile(source, label, "exec"), ns)


def cell_source(path, grade_id):
    return next(
        c.source
        for c in nbformat.read(path, as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id
    )


@pytest.mark.parametrize("path,answer_id,test_id", CASES, ids=[f"{p.stem}:{t}" for p, _, t in CASES])
def test_solution_passes(path, answer_id, test_id):
    ns = base_namespace(path)
    run(ns, cell_source(path, answer_id), answer_id)
    run(ns, cell_source(path, test_id), test_id)


@pytest.mark.parametrize("path,answer_id,test_id", CASES, ids=[f"{p.stem}:{t}" for p, _, t in CASES])
def test_student_version_fails(path, answer_id, test_id):
    student = student_version(path)
    assert "### BEGIN SOLUTION" not in student[answer_id] and "BEGIN HIDDEN TESTS" not in student[test_id]
    ns = base_namespace(path)
    run(ns, student[answer_id], answer_id)
    with pytest.raises((AssertionError, NotImplementedError)):
        run(ns, student[test_id], test_id)


@pytest.mark.parametrize("path,answer_id,test_id", CASES, ids=[f"{p.stem}:{t}" for p, _, t in CASES])
def test_wrong_answers_fail_with_a_diagnosis(path, answer_id, test_id):
    folder = WRONG / path.stem / answer_id
    wrong = sorted(folder.glob("*.py"))
    assert len(wrong) >= 2, f"add at least two plausible wrong answers to {folder.relative_to(ROOT)}/"
    for w in wrong:
        first = w.read_text().splitlines()[0]
        assert first.startswith("# expect:"), f"{w.name}: first line must be '# expect: <part of the message>'"
        expected = first.split(":", 1)[1].strip()
        ns = base_namespace(path)
        run(ns, w.read_text(), str(w))
        with pytest.raises(AssertionError) as err:
            run(ns, cell_source(path, test_id), test_id)
        assert expected in str(err.value), f"{w.relative_to(ROOT)}: message {str(err.value)!r} lacks {expected!r}"


# ---- whole classes of wrong answers, made from the solution itself ---------------------------------
# Each class below turns the solution into a wrong answer of a kind every exercise must catch. The
# hand-written wrong answers in tests/wrong_answers/ cover each exercise's own mistakes; these
# cover the mistakes any answer can make. A class that does not apply (no float output, no
# argument to change) is skipped for that exercise.

HIDDEN = "### BEGIN HIDDEN TESTS"


def answer_functions(source: str) -> list[str]:
    """Names of the functions an answer cell defines at top level."""
    return [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]


def _map_tensors(result, fn):
    """`result` with fn applied to every float tensor in it (a tensor, or a tuple/list of them)."""
    if isinstance(result, torch.Tensor) and result.is_floating_point():
        return fn(result)
    if isinstance(result, (tuple, list)):
        return type(result)(_map_tensors(r, fn) for r in result)
    return result


def _has_float_tensor(result) -> bool:
    if isinstance(result, torch.Tensor):
        return result.is_floating_point()
    return isinstance(result, (tuple, list)) and any(map(_has_float_tensor, result))


def solved_namespace(path, answer_id):
    ns = base_namespace(path)
    run(ns, cell_source(path, answer_id), answer_id)
    return ns


def wrap_answers(ns, names, make):
    """Replace each answer function in ns by make(original); return a dict the wrappers may record into."""
    seen: dict = {"applied": False}
    for name in names:
        ns[name] = functools.wraps(ns[name])(make(ns[name], seen))
    return seen


def failure(ns, path, test_id) -> str | None:
    """The message the full test cell fails with, or None if it passes."""
    try:
        run(ns, cell_source(path, test_id), test_id)
    except (AssertionError, NotImplementedError) as e:
        return str(e)
    return None


def _nan(original, seen):
    def wrong(*args, **kwargs):
        out = original(*args, **kwargs)
        seen["applied"] |= _has_float_tensor(out)
        return _map_tensors(out, lambda t: torch.full_like(t, float("nan")))

    return wrong


def _nudged(original, seen):
    def nudge(t):
        t = t.clone(memory_format=torch.contiguous_format)  # a transposed output too
        t.view(-1)[:1] += 0.05 * (1 + float(t.abs().max()) if t.numel() else 0)
        return t

    def wrong(*args, **kwargs):
        out = original(*args, **kwargs)
        seen["applied"] |= _has_float_tensor(out)
        return _map_tensors(out, nudge)

    return wrong


def _mutate(x) -> bool:
    """Change an argument in place, as a careless answer would; False if it cannot be."""
    if isinstance(x, torch.Tensor) and x.numel():
        with torch.no_grad():
            x.logical_not_() if x.dtype == torch.bool else x.add_(1)
        return True
    if isinstance(x, list) and x:
        x.append(x[0])
        return True
    if isinstance(x, torch.nn.Module) and any(True for _ in x.parameters()):
        with torch.no_grad():
            next(x.parameters()).add_(1)
        return True
    return False


def _in_place(original, seen):
    def wrong(*args, **kwargs):
        out = original(*args, **kwargs)
        for a in [*args, *kwargs.values()]:
            seen["applied"] |= _mutate(a)
        return out

    return wrong


CLASSES = {  # name: (wrapper, what the message must contain, or None: fail with no diagnosis)
    "all_nan_output": (_nan, None),
    "slightly_off_output": (_nudged, None),
    "changes_its_inputs_in_place": (_in_place, "in place"),
}


@pytest.mark.parametrize("cls", list(CLASSES))
@pytest.mark.parametrize("path,answer_id,test_id", CASES, ids=[f"{p.stem}:{t}" for p, _, t in CASES])
def test_a_class_of_wrong_answers_fails_with_a_true_message(path, answer_id, test_id, cls):
    make, expected = CLASSES[cls]
    ns = solved_namespace(path, answer_id)
    names = answer_functions(cell_source(path, answer_id))
    seen = wrap_answers(ns, names, make)
    message = failure(ns, path, test_id)
    if not seen["applied"]:
        pytest.skip(f"{cls} does not apply to {answer_id}")
    assert message is not None, f"{answer_id}: an answer that {cls.replace('_', ' ')} gets full marks"
    if expected is None:
        assert "looks like" not in message, f"{answer_id} ({cls}): a wrong diagnosis: {message!r}"
    else:
        assert expected in message, f"{answer_id} ({cls}): message {message!r} lacks {expected!r}"


@pytest.mark.parametrize("path,answer_id,test_id", CASES, ids=[f"{p.stem}:{t}" for p, _, t in CASES])
def test_hard_coding_the_visible_answers_fails(path, answer_id, test_id):
    """An answer that returns what the visible tests expect, whatever the input, loses the points."""
    ns = solved_namespace(path, answer_id)
    names = answer_functions(cell_source(path, answer_id))
    recorded: dict[str, list] = {n: [] for n in names}
    originals = {n: ns[n] for n in names}

    def recorder(name):
        def record(*args, **kwargs):
            out = originals[name](*args, **kwargs)
            recorded[name].append((copy.deepcopy((args, kwargs)), copy.deepcopy(out)))
            return out

        return functools.wraps(originals[name])(record)

    for n in names:
        ns[n] = recorder(n)
    run(ns, cell_source(path, test_id).split(HIDDEN)[0], test_id + " (visible part)")
    if not any(recorded.values()):
        pytest.skip(f"the visible tests of {answer_id} call none of its functions")
    if all(a == () and k == {} for calls in recorded.values() for (a, k), _ in calls):
        pytest.skip(f"{answer_id}'s functions take no input (a prediction): there is nothing to hard-code against")

    def hard_coded(name):
        def wrong(*args, **kwargs):
            if not recorded[name]:
                return originals[name](*args, **kwargs)  # not seen in the visible tests: leave it right
            for (a, k), out in recorded[name]:
                if grading._same(a, args) and grading._same(k, kwargs):
                    return copy.deepcopy(out)
            return copy.deepcopy(recorded[name][0][1])

        return functools.wraps(originals[name])(wrong)

    ns = solved_namespace(path, answer_id)
    for n in names:
        ns[n] = hard_coded(n)
    assert failure(ns, path, test_id) is not None, (
        f"{answer_id}: an answer that returns the visible tests' values for any input gets full marks; "
        "the hidden tests need inputs of their own"
    )


@pytest.mark.parametrize("path,answer_id,test_id", CASES, ids=[f"{p.stem}:{t}" for p, _, t in CASES])
def test_visible_tests_compute_no_answer(path, answer_id, test_id):
    """The part a student sees checks hand-worked examples and properties; references live in course_utils."""
    visible = ast.parse(cell_source(path, test_id).split(HIDDEN)[0])
    for node in ast.walk(visible):
        assert not isinstance(node, (ast.FunctionDef, ast.Lambda, ast.ClassDef)), (
            f"{test_id}: the visible test defines {getattr(node, 'name', 'a lambda')}; "
            "move reference code to course_utils/tools/exercises/"
        )
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course_utils"):
            assert node.module.startswith(("course_utils.tools.grading", "course_utils.tools.exercises")), (
                f"{test_id}: the visible test imports {node.module}, whose functions compute the answer"
            )


def solution_lines(source: str) -> int:
    """Lines of code (no blanks, no comments) between BEGIN and END SOLUTION in a cell."""
    inside, n = False, 0
    for line in source.splitlines():
        text = line.strip()
        if text == "### BEGIN SOLUTION":
            inside = True
        elif text == "### END SOLUTION":
            inside = False
        elif inside and text and not text.startswith("#"):
            n += 1
    return n


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if not p.stem.startswith("00")], ids=lambda p: p.stem)
def test_each_lesson_has_a_build_exercise_and_a_prediction(path):
    """One exercise assembles a model part (15-40 lines); one asks to predict a measurement before it is shown."""
    _, pairs = exercises(path)
    sizes = [solution_lines(a.source) for a, _ in pairs]
    assert any(15 <= n <= 40 for n in sizes), f"{path.name}: no exercise of 15-40 lines (answers have {sizes})"
    predictions = [t for _, t in pairs if "expect_choice(" in t.source.split(HIDDEN, 1)[-1] and "correct=" in t.source]
    assert predictions, f"{path.name}: no prediction question graded with expect_choice(..., correct=...)"
