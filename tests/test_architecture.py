"""The house rules of CONTRIBUTING.md that a machine can check, on the source text (ast), not by importing it.

- no import cycle among course_utils modules (imports inside functions count: they run too);
- lesson modules (everything outside course_utils/tools/) never import course_utils.tools, and
  never import IPython, ipywidgets or plotly when they are imported;
- a function imports inside its body only optional third-party packages (transformers, tqdm ...),
  never a course_utils module or the standard library (those go at the top of the module);
- a module over 450 lines says why in its docstring, in a paragraph that starts "Why this file is long:";
- no tracked file points outside the repository (the course's old shared folder, its seed notes);
- the one vocabulary: no config dataclass field from the list of rejected synonyms, no `self.cfg`
  and no `cfg` parameter, `return_attention` rather than need_weights / return_weights / attention=;
- one `count_parameters` (course_utils.measure), no aliases of it;
- tests/test_doctests.py runs the docstrings of every module, subpackages included.
Each failure names the file, the line and what to do.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from notebook_runner import ROOT

PACKAGE = ROOT / "course_utils"
LONG = 450
LONG_MARKER = re.compile(r"(?:\A|\n[ \t]*\n)[ \t]*Why this file is long:[ \t]*\S")
GUI = ("IPython", "ipywidgets", "plotly")
# Rejected synonyms of the one vocabulary (CONTRIBUTING.md, "The one vocabulary") -> the name to use.
SYNONYMS = {
    "n_embd": "d_model",
    "dim": "d_model",
    "hidden": "d_model",
    "hidden_size": "d_model",
    "n_head": "n_heads",
    "n_layer": "n_layers",
    "depth": "n_layers",
    "block_size": "max_len",
    "max_position": "max_len",
    "max_position_embeddings": "max_len",
    "mlp_dim": "d_ff",
    "intermediate": "d_ff",
    "intermediate_size": "d_ff",
    "tie_weights": "tie_embeddings",
}
ATTENTION_FLAGS = ("need_weights", "return_weights")  # course_utils spells it return_attention


# --- reading the package ------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. "course_utils.bpe"
    target: str  # what it imports, resolved: "course_utils.bytelevel", "torch.nn", "plotly.graph_objects"
    line: int
    function: str | None  # the enclosing function, None at module level (class bodies run at import too)

    @property
    def where(self) -> str:
        return f"{_rel(module_path(self.module))}:{self.line}" + (f" (in {self.function})" if self.function else "")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_path(name: str) -> Path:
    base = ROOT.joinpath(*name.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


MODULE_FILES = sorted(PACKAGE.rglob("*.py"))
MODULES = {module_name(p): p for p in MODULE_FILES}
TREES = {name: ast.parse(path.read_text(encoding="utf-8"), str(path)) for name, path in MODULES.items()}


def is_lesson(name: str) -> bool:
    return not (name == "course_utils.tools" or name.startswith("course_utils.tools."))


def _resolve(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The dotted names an import statement loads, submodules resolved against the package's files."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        package = module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]
        for _ in range(node.level - 1):
            package = package.rsplit(".", 1)[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    found = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        found.append(sub if sub in MODULES else base)
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(module: str) -> list[Import]:
    """Every import a module runs, at module level or inside a function (not under `if TYPE_CHECKING:`)."""
    found: list[Import] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for other in child.orelse:
                    visit(other, function)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.extend(Import(module, t, child.lineno, function) for t in _resolve(module, child))
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.Lambda):
                inner = function or "<lambda>"
            visit(child, inner)

    visit(TREES[module], None)
    return found


ALL_IMPORTS = {m: imports(m) for m in MODULES}


def _ours(target: str) -> str | None:
    """The course_utils module a resolved import name lands in (its longest existing prefix), else None."""
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        if name in MODULES:
            return name
    return None


# --- imports ------------------------------------------------------------------------------


def find_cycles(edges: dict[str, dict[str, Import]]) -> list[list[str]]:
    """One cycle (as a path a -> b -> ... -> a) per strongly connected group of modules (Tarjan)."""
    index, low, stack, on_stack, groups, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in edges.get(v, {}):
                groups.append(set(group))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return [_cycle_through(min(group), group, edges) for group in groups]


def _cycle_through(start: str, group: set[str], edges: dict[str, dict[str, Import]]) -> list[str]:
    """A path start -> ... -> start inside one strongly connected group (depth-first)."""
    path, seen = [start], {start}

    def walk(v):
        for w in sorted(edges[v]):
            if w == start:
                return path + [start]
            if w in group and w not in seen:
                seen.add(w)
                path.append(w)
                done = walk(w)
                if done:
                    return done
                path.pop()
        return None

    return walk(start)


def test_no_import_cycle_in_course_utils():
    edges: dict[str, dict[str, Import]] = {m: {} for m in MODULES}
    for module, found in ALL_IMPORTS.items():
        for imp in found:
            target = _ours(imp.target)
            if target and target != module:
                edges[module].setdefault(target, imp)
    cycles = find_cycles(edges)
    described = []
    for cycle in cycles:
        hops = [f"{a} imports {b} at {edges[a][b].where}" for a, b in zip(cycle, cycle[1:])]
        described.append(" -> ".join(cycle) + "\n    " + "\n    ".join(hops))
    assert not cycles, (
        "import cycles among course_utils modules (move the shared code into one module both can "
        "import, or pass it in; a function-level import does not break a cycle, it hides it):\n  "
        + "\n  ".join(described)
    )


def test_lesson_modules_never_import_tools_nor_gui_at_import_time():
    bad = []
    for module, found in ALL_IMPORTS.items():
        if not is_lesson(module):
            continue
        for imp in found:
            if imp.target == "course_utils.tools" or imp.target.startswith("course_utils.tools."):
                bad.append(
                    f"{imp.where}: imports {imp.target}; lesson modules never import course_utils.tools "
                    "(move this code into tools/, or let the notebook pass the tool in)"
                )
            elif imp.function is None and imp.target.split(".")[0] in GUI:
                bad.append(
                    f"{imp.where}: imports {imp.target} at module level; a lesson module imports "
                    f"{'/'.join(GUI)} only inside the function that draws (so it loads without them)"
                )
    assert not bad, "\n".join(bad)


def _stdlib(target: str) -> bool:
    return target.split(".")[0] in sys.stdlib_module_names


def test_functions_import_only_optional_packages():
    """An import inside a function is for an optional or heavy third-party package; ours and the stdlib go on top."""
    bad = []
    for found in ALL_IMPORTS.values():
        for imp in found:
            if imp.function is None or imp.function == "<lambda>":
                continue
            if _ours(imp.target) or _stdlib(imp.target):
                kind = "a course_utils module" if _ours(imp.target) else "the standard library"
                bad.append(
                    f"{imp.where}: imports {imp.target} ({kind}) inside a function; "
                    "move it to the top of the module (an import cycle it avoided is reported separately)"
                )
    assert not bad, "\n".join(bad)


# --- size ---------------------------------------------------------------------------------


def test_long_modules_say_why():
    bad = []
    for module, path in MODULES.items():
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n <= LONG:
            continue
        doc = ast.get_docstring(TREES[module]) or ""
        if not LONG_MARKER.search(doc):
            bad.append(
                f"{_rel(path)} has {n} lines (more than {LONG}): split it by idea, or give its docstring "
                "a paragraph that starts 'Why this file is long:' and says why it is one file"
            )
    assert not bad, "\n".join(bad)


def test_the_long_module_marker_is_recognised():
    assert LONG_MARKER.search("One line.\n\nWhy this file is long: the model and its loader share one config.")
    assert not LONG_MARKER.search("One line.\n\nWhy this file is long:\n")
    assert not LONG_MARKER.search("It explains why this file is long: no paragraph of its own.")


# --- references outside the repository ----------------------------------------------------

OUTSIDE = [
    (re.compile(r"\.\./shared\b"), "the old shared folder"),
    (re.compile(r"\b(?:CONVENTIONS|SYLLABUS)(?:\.md)?\b"), "the old shared folder's rule files (now CONTRIBUTING.md)"),
    (re.compile(r"\bseeds/"), "the seed notes' folder"),
    (re.compile(r"\bseeds? 00\d\b", re.I), "a seed note by number"),
    (
        re.compile(r"\bthe seeds\b|\bthe seeds?'s?|\bfrom the seed\b|\bthe seed says\b", re.I),
        "'the seed(s)' as a source",
    ),
    (re.compile(r"\((?:00[0-4])(?:[,/ ]+00[0-4])*\)"), "a seed note by number in brackets"),
]
FIX_OUTSIDE = (
    "cite the lecture deck by name (lecture notes, Practical Transformers / Transformers intuition / "
    "Deep Learning ch. 7 / CS 585 (Betke) / CS 4644/7643 (Kira): CONTRIBUTING.md, 'Sources') or, better, "
    "the paper; rules live in CONTRIBUTING.md"
)


def tracked_files() -> list[Path]:
    done = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True)
    if done.returncode != 0:
        pytest.skip("not a git checkout: the tracked files are unknown")
    return [ROOT / p for p in done.stdout.decode().split("\0") if p]


def outside_references(paths: list[Path], root: Path = ROOT) -> list[str]:
    """'file:line: match (what it is)' for each line of `paths` that points outside the repository."""
    hits = []
    for path in paths:
        rel = path.relative_to(root)
        if path == Path(__file__).resolve() or (rel.parts[0] == "data" and rel.name != "README.md"):
            continue  # this file names the patterns; data files are data (a German sentence about seeds)
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for pattern, what in OUTSIDE:
                match = pattern.search(line)
                if match:
                    hits.append(f"{rel}:{number}: {match.group(0)!r} ({what})")
                    break
    return hits


def test_no_tracked_file_points_outside_the_repository():
    hits = outside_references(tracked_files())
    shown = hits[:60] + ([f"... and {len(hits) - 60} more"] if len(hits) > 60 else [])
    assert not hits, f"{len(hits)} references to files outside the repository; {FIX_OUTSIDE}:\n" + "\n".join(shown)


def test_the_outside_patterns_catch_what_they_should(tmp_path):
    ok = tmp_path / "ok.py"
    ok.write_text("torch.manual_seed(0)\nseed=0  # the seed of the generator\n(lecture notes, CS 585 (Betke))\n")
    bad = tmp_path / "bad.py"
    bad.write_text(
        "see ../shared/CONVENTIONS.md\nas in seed 003's notation\nthe seed's formula\n"
        "the cost table (003)\n../shared/seeds/002.md\n"
    )
    assert outside_references([ok], tmp_path) == []
    assert len(outside_references([bad], tmp_path)) == 5, outside_references([bad], tmp_path)


# --- the one vocabulary -------------------------------------------------------------------


def _is_dataclass(node: ast.ClassDef) -> bool:
    for deco in node.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        if (isinstance(target, ast.Name) and target.id == "dataclass") or (
            isinstance(target, ast.Attribute) and target.attr == "dataclass"
        ):
            return True
    return False


def test_config_dataclasses_use_the_one_vocabulary():
    bad, configs = [], 0
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Config") and _is_dataclass(node):
                configs += 1
                for item in node.body:
                    if (
                        isinstance(item, ast.AnnAssign)
                        and isinstance(item.target, ast.Name)
                        and item.target.id in SYNONYMS
                    ):
                        bad.append(
                            f"{_rel(MODULES[module])}:{item.lineno}: {node.name}.{item.target.id} "
                            f"-> {SYNONYMS[item.target.id]}"
                        )
    assert configs, "no *Config dataclass found in course_utils: has the package moved?"
    assert not bad, (
        "config fields with a rejected synonym (rename the field and every caller; a converter "
        "such as hf_gpt2_config maps our names to Hugging Face's):\n" + "\n".join(bad)
    )


def _params(node: ast.FunctionDef | ast.AsyncFunctionDef):
    a = node.args
    positional = a.posonlyargs + a.args
    defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    yield from zip(positional, defaults)
    yield from zip(a.kwonlyargs, a.kw_defaults)


def test_models_keep_their_config_as_self_config():
    bad = []
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, (ast.AnnAssign, ast.AugAssign))
                else []
            )
            for t in targets:
                if (
                    isinstance(t, ast.Attribute)
                    and t.attr == "cfg"
                    and isinstance(t.value, ast.Name)
                    and t.value.id == "self"
                ):
                    bad.append(
                        f"{_rel(MODULES[module])}:{node.lineno}: stores self.cfg; a model stores its config "
                        "as self.config (and every reader of .cfg moves with it)"
                    )
    assert not bad, "\n".join(bad)


def test_function_parameters_use_the_one_vocabulary():
    bad = []
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            where = f"{_rel(MODULES[module])}:{node.lineno}: {node.name}()"
            for arg, default in _params(node):
                if arg.arg in ATTENTION_FLAGS:
                    bad.append(
                        f"{where} takes {arg.arg}=; course_utils spells it return_attention "
                        "(torch's own need_weights= stays, where we call torch)"
                    )
                elif arg.arg == "attention" and isinstance(default, ast.Constant) and isinstance(default.value, bool):
                    bad.append(f"{where} takes attention={default.value}; spell the flag return_attention")
                elif arg.arg == "cfg":
                    bad.append(f"{where} takes cfg; a config is called config everywhere")
    assert not bad, "\n".join(bad)


def test_one_count_parameters():
    defs, aliases = [], []
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "count_parameters":
                defs.append(f"{_rel(MODULES[module])}:{node.lineno}")
            value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
            if (
                isinstance(value, (ast.Name, ast.Attribute))
                and (getattr(value, "id", None) or getattr(value, "attr", None)) == "count_parameters"
            ):
                aliases.append(f"{_rel(MODULES[module])}:{node.lineno}")
    assert len(defs) == 1 and defs[0].startswith("course_utils/measure.py:"), (
        f"{len(defs)} definitions of count_parameters: {defs}. Keep the one in course_utils/measure.py "
        "(count_parameters(model, trainable_only=False) -> int, for a built module); a closed-form count from a "
        "config is parameter_formula(config, ...) in the model's module"
    )
    assert not aliases, f"aliases of count_parameters (import it from course_utils.measure instead): {aliases}"


# --- the doctests cover every module ------------------------------------------------------


def test_doctests_cover_every_module_subpackages_included():
    import test_doctests  # tests/ is on sys.path (conftest); importing it imports course_utils

    expected = {name for name, path in MODULES.items() if path.name != "__init__.py"}
    missing = sorted(expected - set(test_doctests.MODULES))
    assert any("." in m.removeprefix("course_utils.") for m in expected), "no subpackage module found to check"
    assert not missing, f"tests/test_doctests.py does not run the docstrings of {missing}"
