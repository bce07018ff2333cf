"""environment.yml (conda) and pyproject.toml (pip) must list the same packages with the same pins."""

import tomllib

import yaml
from notebook_runner import ROOT


def test_conda_and_pip_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_side = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_list = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_side = {r for r in pip_list if not r.startswith("-")}
    assert conda_side == pip_side, (
        f"only in environment.yml: {sorted(conda_side - pip_side)}; "
        f"only in pyproject.toml: {sorted(pip_side - conda_side)}"
    )


def test_torch_is_pinned_and_torchvision_absent():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"torch==2.13.0"' in text
    assert "torchvision" not in text and "torchvision" not in (ROOT / "environment.yml").read_text()
