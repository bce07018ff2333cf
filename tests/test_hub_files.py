"""The hub's files, checked offline: Helm values, the image, the hub and nbgrader configs, the loop's errors.

- hub/z2jh/values.yaml parses, uses only keys of hub/z2jh/schema.yaml (strict at every level it lists),
  its hub.config settings are real traits of the installed JupyterHub and NativeAuthenticator, and its
  extraConfig is Python that compiles;
- hub/Dockerfile installs what pyproject.toml lists (torch at its pin, the project with the `hub` extra)
  and SmolLM2's package as the Makefile does, copies only folders that exist, and leaves notebooks/ out;
- hub/jupyterhub_config.py and hub/jupyter/nbgrader_config.py set only traits that exist;
- the class loop's commands (course_utils.tools.hub) refuse bad input with a message that says how to fix it.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml
from notebook_runner import ROOT
from traitlets.config import Config

from course_utils.tools import hub

HUB = ROOT / "hub"
VALUES = HUB / "z2jh" / "values.yaml"
SCHEMA = HUB / "z2jh" / "schema.yaml"
DOCKERFILE = HUB / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# where each configurable class the hub files set lives
CLASSES = {
    "JupyterHub": "jupyterhub.app:JupyterHub",
    "ConfigurableHTTPProxy": "jupyterhub.proxy:ConfigurableHTTPProxy",
    "Authenticator": "jupyterhub.auth:Authenticator",
    "NativeAuthenticator": "nativeauthenticator:NativeAuthenticator",
    "Spawner": "jupyterhub.spawner:Spawner",
    "LocalProcessSpawner": "jupyterhub.spawner:LocalProcessSpawner",
    "CourseDirectory": "nbgrader.coursedir:CourseDirectory",
    "Exchange": "nbgrader.exchange.default.exchange:Exchange",
}


def _class(name: str):
    module, attr = CLASSES[name].split(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as e:
        pytest.skip(f"needs the hub extra (make hub-setup) to check {name}'s settings: {e}")


def _unknown_traits(config: dict) -> list[str]:
    """'Class.trait' for each setting in `config` that its class does not have."""
    bad = []
    for section, settings in config.items():
        assert section in CLASSES, f"a setting of {section}: add where that class lives to CLASSES"
        traits = set(_class(section).class_trait_names())
        bad += [f"{section}.{name}" for name in settings if name not in traits]
    return bad


def test_helm_values_use_only_keys_the_chart_knows():
    values = yaml.safe_load(VALUES.read_text())
    schema = yaml.safe_load(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = [f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(values)]
    assert not errors, f"{VALUES.relative_to(ROOT)} does not fit {SCHEMA.relative_to(ROOT)}: {errors}"
    # the schema is strict where it lists keys: a typo fails
    typo = yaml.safe_load(VALUES.read_text())
    typo["singleuser"]["memroy"] = typo["singleuser"].pop("memory")
    assert any("memroy" in e.message for e in validator.iter_errors(typo))
    # the chart's own rules this file depends on
    assert values["singleuser"]["storage"]["extraVolumeMounts"][0]["mountPath"] == hub.DEFAULT_EXCHANGE.as_posix()
    assert values["singleuser"]["extraEnv"]["COURSE_EXCHANGE"] == hub.DEFAULT_EXCHANGE.as_posix()
    assert values["singleuser"]["extraEnv"]["JUPYTER_CONFIG_PATH"] == "/srv/course/hub/jupyter"
    assert (HUB / "jupyter" / "nbgrader_config.py").exists()


def test_helm_values_hub_config_is_real_jupyterhub_config():
    values = yaml.safe_load(VALUES.read_text())
    assert not _unknown_traits(values["hub"]["config"]), "hub.config sets traits that do not exist"
    for name, code in values["hub"]["extraConfig"].items():
        compile(code, f"hub.extraConfig.{name}", "exec")
    admins = values["hub"]["config"]["Authenticator"]["admin_users"]
    assert admins == ["instructor"]
    pattern = values["hub"]["config"]["Authenticator"]["username_pattern"]
    assert re.match(pattern, "student1") and not re.match(pattern, "../root")


def _exec_config(path: Path, monkeypatch, tmp_path) -> Config:
    c = Config()
    monkeypatch.setattr(hub, "shared_environment_problem", lambda paths=None: None)  # checked at a real start
    monkeypatch.setenv("COURSE_HUB_STATE", str(tmp_path / "state"))
    exec(compile(path.read_text(), str(path), "exec"), {"get_config": lambda: c, "__file__": str(path)})
    return c


def test_the_hub_and_nbgrader_configs_set_only_real_traits(monkeypatch, tmp_path):
    c = _exec_config(HUB / "jupyterhub_config.py", monkeypatch, tmp_path)
    assert not _unknown_traits(c), "hub/jupyterhub_config.py sets traits that do not exist"
    assert c.JupyterHub.ip == "127.0.0.1", "the hub listens on loopback unless told otherwise"
    assert c.JupyterHub.authenticator_class == "native"
    assert {s["name"] for s in c.JupyterHub.services} == {"idle-culler"}
    monkeypatch.setenv("COURSE_HUB_API_TOKEN", "x" * 32)
    c = _exec_config(HUB / "jupyterhub_config.py", monkeypatch, tmp_path)
    assert {s["name"] for s in c.JupyterHub.services} == {"idle-culler", "course-admin"}

    monkeypatch.setenv("COURSE_ROLE", "instructor")
    monkeypatch.setenv("COURSE_BUILD_DIR", str(tmp_path / "b"))
    n = _exec_config(HUB / "jupyter" / "nbgrader_config.py", monkeypatch, tmp_path)
    assert not _unknown_traits(n)
    assert n.CourseDirectory.course_id == hub.COURSE_ID
    assert n.CourseDirectory.root == str(tmp_path / "b" / "nbgrader")


def _pip_installs(dockerfile: str) -> list[str]:
    """The requirement arguments of every `pip install` in the Dockerfile, with ARG defaults filled in."""
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", dockerfile, flags=re.M))
    joined = dockerfile.replace("\\\n", " ")
    found = []
    for command in re.findall(r"pip install ([^&\n]+)", joined):
        words = command.split()
        skip_next = False
        for word in words:
            if skip_next:
                skip_next = False
                continue
            if word in ("--index-url", "--extra-index-url", "-i"):
                skip_next = True
                continue
            if word.startswith("-") and word != "-e":
                continue
            if word == "-e":
                continue
            word = word.strip("\"'")
            word = re.sub(r"\$\{?(\w+)\}?", lambda m: args[m.group(1)], word)
            found.append(word)
    return found


def test_the_image_installs_what_pyproject_lists():
    text = DOCKERFILE.read_text()
    installed = _pip_installs(text)
    torch_pin = next(d for d in PYPROJECT["project"]["dependencies"] if d.startswith("torch"))
    smollm = re.search(r"^SMOLLM\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), flags=re.M).group(1)
    assert sorted(installed) == sorted([torch_pin, ".[hub]", smollm]), (
        f"hub/Dockerfile installs {installed}: it must install pyproject's torch pin ({torch_pin}), the project "
        f"with the hub extra (.[hub]) and the Makefile's SMOLLM ({smollm}), and nothing named by hand"
    )
    assert "hub" in PYPROJECT["project"]["optional-dependencies"]
    hub_extra = PYPROJECT["project"]["optional-dependencies"]["hub"]
    assert any(r.startswith("jupyterhub>=5") for r in hub_extra), "z2jh 4.x runs JupyterHub 5: the image's must match"
    for src in re.findall(r"^COPY (.+) \S+$", text, flags=re.M):
        for part in src.split():
            assert (ROOT / part).exists(), f"hub/Dockerfile copies {part}, which the repository does not have"
            assert part != "notebooks", "notebooks/ holds the solutions: students get their copies from the exchange"
    ignore = (HUB / "Dockerfile.dockerignore").read_text().split()
    assert {"notebooks", "build", ".venv", "student"} <= set(ignore)


def test_the_class_loop_refuses_bad_input_with_a_fix(tmp_path, capsys):
    with pytest.raises(hub.HubError, match="does not exist.*chmod 1777"):
        hub.exchange_root(tmp_path / "nowhere")
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o755)
    closed.chmod(0o755)
    with pytest.raises(hub.HubError, match="mode 0o755, not 1777"):
        hub.exchange_root(closed)
    closed.chmod(0o1777)
    assert hub.exchange_root(closed) == closed
    with pytest.raises(hub.HubError, match="no notebook with exercises named '99_nothing'; known: 00_start_here"):
        hub.release("99_nothing", exchange=closed)
    with pytest.raises(hub.HubError, match="name the notebook"):
        hub.release("", exchange=closed)
    with pytest.raises(hub.HubError, match="never released.*make release NB=01_attention"):
        hub.collect("01_attention", exchange=closed)
    course = tmp_path / "course"
    with pytest.raises(hub.HubError, match="no collected submission.*make collect NB=01_attention"):
        hub.grade_collected("01_attention", course=course)
    with pytest.raises(hub.HubError, match="no feedback pages.*make autograde NB=01_attention"):
        hub.release_feedback("01_attention", course=course, exchange=closed)
    assert hub.main(["collect", "01_attention", "--exchange", str(tmp_path / "nowhere")]) == 1
    assert "COLLECT FAILED: the exchange folder" in capsys.readouterr().err
    assert hub.main(["autograde", "01_attention", "--timeout", "0"]) == 1
    assert "--timeout must be at least 1" in capsys.readouterr().err


def test_the_shared_environment_check_names_the_folder(tmp_path):
    private = tmp_path / "private"
    private.mkdir()
    private.chmod(0o700)
    problem = hub.shared_environment_problem([private / "python"])
    assert problem is not None and str(private) in problem and "PYTHON=/usr/bin/python3" in problem
    private.chmod(0o755)
    assert hub.shared_environment_problem([private]) is None or str(private) not in hub.shared_environment_problem(
        [private]
    )


def test_the_image_entrypoint_is_valid_shell():
    script = HUB / "k8s-entrypoint.sh"
    assert os.access(script, os.X_OK), "hub/k8s-entrypoint.sh must be executable (the image runs it)"
    done = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert '"/srv/course/hub/k8s-entrypoint.sh"' in DOCKERFILE.read_text()
