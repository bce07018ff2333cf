""".ci/hub's "once per change" rule: a stamped, committed hash skips the hub test; a changed hub file does not."""

import os
import shutil
import subprocess

import pytest

from course_utils.paths import ROOT

TOOLS = ["bash", "git", "sha256sum", "cut", "cat", "id", "grep", "dirname", "date", "mkdir", "chmod", "env"]


def run(cmd, cwd, path=None):
    env = {**os.environ, "PATH": path} if path else None
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def clone(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("needs git")
    repo = tmp_path / "course"
    assert run(["git", "clone", "-q", str(ROOT), str(repo)], tmp_path).returncode == 0
    shutil.copy(ROOT / ".ci" / "hub", repo / ".ci" / "hub")  # the working copy under test
    for cmd in (["git", "config", "user.email", "ci@example.org"], ["git", "config", "user.name", "CI"]):
        run(cmd, repo)
    bin_dir = tmp_path / "bin"  # a PATH without npm: a changed hub skips with its reason instead of running
    bin_dir.mkdir()
    for tool in TOOLS:
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    return repo, str(bin_dir)


def test_a_committed_stamp_skips_and_a_changed_hub_file_runs(clone):
    repo, path = clone
    assert run(["bash", ".ci/hub", "--stamp"], repo).returncode == 0
    run(["git", "add", "hub/e2e.sha256"], repo)
    run(["git", "commit", "-qm", "stamp"], repo)
    after = run(["bash", ".ci/hub"], repo, path)
    assert after.returncode == 0 and "unchanged since the last recorded end-to-end run" in after.stdout, (
        "a stamp committed beside the hub files must match them (the stamp file cannot be part of its own hash): "
        + after.stdout
    )
    (repo / "hub" / "README.md").write_text("changed\n")
    run(["git", "add", "hub/README.md"], repo)
    changed = run(["bash", ".ci/hub"], repo, path)
    assert (
        changed.returncode == 0 and "the hub files changed, but the end-to-end test cannot run here" in changed.stdout
    )


def test_unknown_arguments_get_the_usage(clone):
    repo, _ = clone
    bad = run(["bash", ".ci/hub", "--stmap"], repo)
    assert bad.returncode == 2 and "usage: bash .ci/hub" in bad.stdout
