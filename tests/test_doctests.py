"""The worked examples in course_utils docstrings are run, so they cannot drift from the code."""

import doctest
import importlib
import pkgutil

import course_utils
import pytest

MODULES = sorted(m.name for m in pkgutil.walk_packages(course_utils.__path__, "course_utils.") if not m.ispkg)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, (
        f"{result.failed} docstring example(s) in {name.replace('.', '/')}.py failed (see output)"
    )
