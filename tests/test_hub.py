"""A whole class on one JupyterHub, end to end: release, fetch, submit, collect, autograde, feedback, isolation.

The test starts the course's hub with `make hub` (hub/jupyterhub_config.py, unchanged but for
environment variables: free loopback ports, temporary state, homes and exchange) and drives it
through its REST API with a token for scripted administration. An instructor and three students get real Unix accounts (the
hub's pre-spawn hook creates them, as on a real server) and a real single-user server each, so
"no student can read another's work" is checked by the kernel's file permissions, not by a
simulation: a student's fetch, answers, submission and feedback fetch all go through that
student's own server, running as that student. The instructor's steps run as the instructor's
Unix user (runuser), with the instructor's commands: `make release/collect/autograde/feedback`.

Needs root (to create users and start servers as them), the hub extra and configurable-http-proxy
(`make hub-setup`), and an environment other users can run (a venv made from /usr/bin/python3, not
from a Python under /root); skipped with the reason otherwise. It creates and removes everything
itself (users, homes, ports, processes), also when it fails. About 60 s on 2 shared cores: part of
`make test` where it can run; `make test-hub` sets up the hub extra and runs it alone (marker `hub`).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import nbformat
import pytest
from notebook_runner import ROOT

from course_utils.paths import build_root
from course_utils.tools.hub import shared_environment_problem

AID = "01_attention"
VENV_BIN = Path(sys.executable).parent
PROXY = Path(sys.prefix) / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
WRONG = ROOT / "tests" / "wrong_answers" / AID
SHOTS = build_root() / "screenshots"
# this environment, which is set up already: make must never reinstall it from inside the test
MAKE_ARGS = [f"VENV={sys.prefix}", "-o", f"{sys.prefix}/.installed"]


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root: the hub creates a Unix user per student and starts each server as that user"
    if shutil.which("jupyterhub", path=str(VENV_BIN)) is None:
        return "needs the hub extra: make hub-setup (pip install -e '.[hub]')"
    if not PROXY.exists():
        return f"needs configurable-http-proxy at {PROXY}: make hub-setup (npm install)"
    for tool in ("useradd", "userdel", "runuser"):
        if shutil.which(tool) is None:
            return f"needs {tool} (passwd / util-linux)"
    return shared_environment_problem()


WHY_NOT = _why_not()
if WHY_NOT is not None and os.environ.get("COURSE_REQUIRE_HUB") == "1":  # .ci/hub: a skip would hide a broken set-up
    raise RuntimeError(f"COURSE_REQUIRE_HUB=1, but the hub test cannot run: {WHY_NOT}")
pytestmark = [pytest.mark.hub, pytest.mark.notebook, pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT))]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Hub:
    """The running hub: its URL, the admin token, the class's names and folders."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.port, api_port, proxy_port = _free_ports(3)
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(32)
        tag = f"ct{os.getpid() % 10000}{secrets.token_hex(2)}"
        self.instructor = f"{tag}i"
        self.students = [f"{tag}s{i}" for i in (1, 2, 3)]
        self.exchange = tmp / "exchange"
        self.homes = tmp / "home"
        self.env = {
            **os.environ,
            "COURSE_HUB_PORT": str(self.port),
            "COURSE_HUB_API_PORT": str(api_port),
            "COURSE_HUB_PROXY_API_PORT": str(proxy_port),
            "COURSE_HUB_STATE": str(tmp / "state"),
            "COURSE_HUB_HOMES": str(self.homes),
            "COURSE_EXCHANGE": str(self.exchange),
            "COURSE_INSTRUCTOR": self.instructor,
            "COURSE_HUB_API_TOKEN": self.token,
        }
        self.user_tokens: dict[str, str] = {}

    @property
    def users(self) -> list[str]:
        return [self.instructor, *self.students]

    def build(self) -> Path:
        """The instructor's course build folder (COURSE_BUILD_DIR of their server and commands)."""
        return self.homes / self.instructor / "course-build"

    def request(self, method: str, path: str, body=None, token: str | None = None, form: bool = False):
        data, headers = None, {"Authorization": f"token {token or self.token}"}
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                text = r.read().decode()
                return r.status, (json.loads(text) if text.strip()[:1] in ("{", "[") else text)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def as_user(self, name: str, method: str, path: str, body=None, form: bool = False):
        """A request to `name`'s own single-user server, through the hub's proxy, with `name`'s token."""
        return self.request(method, f"/user/{name}{path}", body, token=self.user_tokens[name], form=form)

    def run_as(self, name: str, args: list[str], **env) -> subprocess.CompletedProcess:
        home = pwd.getpwnam(name).pw_dir
        extra = {"HOME": home, "USER": name, "PATH": f"{VENV_BIN}:/usr/bin:/bin", "COURSE_EXCHANGE": str(self.exchange)}
        for var in ("JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "IPYTHONDIR", "MPLCONFIGDIR"):
            extra[var] = f"{home}/.course-test/{var.lower()}"
        pairs = [f"{k}={v}" for k, v in {**extra, **env}.items()]
        return subprocess.run(
            ["runuser", "-u", name, "--", "env", *pairs, *args], cwd=ROOT, capture_output=True, text=True, timeout=900
        )


def _user_rss_mib(name: str) -> float:
    """Resident memory of all processes of Unix user `name` (their JupyterLab server, kernels), in MiB."""
    uid, total = pwd.getpwnam(name).pw_uid, 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    status = (entry / "status").read_text()
                    total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) if "VmRSS" in status else 0
    return total / 1024


def _kill_users_processes(names: list[str]) -> None:
    """SIGKILL each process owned by one of the test's own users (their servers and kernels), by pid."""
    uids = {pwd.getpwnam(n).pw_uid for n in names if _exists(n)}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid in uids:
                    os.kill(int(entry.name), signal.SIGKILL)


def _stop_group(proc: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM the process group of `make hub` (the hub stops its servers and proxy), SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        proc.poll()  # reap make itself
        try:
            os.killpg(proc.pid, 0)  # anyone left in the group?
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture(scope="module")
def hub():
    tmp = Path(tempfile.mkdtemp(prefix="course-hub-"))
    tmp.chmod(0o755)  # the homes below it must be reachable by their owners
    h = Hub(tmp)
    assert not any(_exists(n) for n in h.users), f"test user names already taken: {h.users}"
    h.exchange.mkdir()
    h.exchange.chmod(0o1777)
    log = open(tmp / "hub.log", "wb")
    proc = subprocess.Popen(
        ["make", "--no-print-directory", *MAKE_ARGS, "-o", f"{sys.prefix}/.hub-installed", "hub"],
        cwd=ROOT,
        env=h.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    h.proc, h.log = proc, tmp / "hub.log"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the hub exited at start:\n" + h.log.read_text()[-3000:]
            with contextlib.suppress(OSError):
                if h.request("GET", "/hub/api/")[0] == 200:
                    break
            time.sleep(0.5)
        else:
            pytest.fail("the hub did not answer within 60 s:\n" + h.log.read_text()[-3000:])
        yield h
    finally:
        _stop_group(proc)
        log.close()
        kept = build_root() / "hub-test"
        kept.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(h.log, kept / "hub.log")  # what the hub said, kept for a failed run's reader
        _kill_users_processes(h.users)
        for name in h.users:
            if _exists(name):
                subprocess.run(["userdel", "--remove", name], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def _start_servers(hub: Hub) -> None:
    status, body = hub.request("POST", "/hub/api/users", {"usernames": hub.students})
    assert status == 201, f"creating the students failed: {status} {body}"
    for name in hub.users:
        status, body = hub.request("POST", f"/hub/api/users/{name}/tokens", {"note": "course test"})
        assert status == 201, f"a token for {name}: {status} {body}"
        hub.user_tokens[name] = body["token"]
        status, body = hub.request("POST", f"/hub/api/users/{name}/server")
        assert status in (201, 202), f"starting {name}'s server: {status} {body}"
    deadline = time.monotonic() + 240
    waiting = set(hub.users)
    while waiting and time.monotonic() < deadline:
        for name in sorted(waiting):
            status, body = hub.request("GET", f"/hub/api/users/{name}")
            if status == 200 and body.get("servers", {}).get("", {}).get("ready"):
                waiting.discard(name)
        time.sleep(1)
    assert not waiting, f"servers not ready after 240 s: {waiting}\n" + hub.log.read_text()[-3000:]


def _answers(kind: str) -> dict[str, str]:
    """{answer grade_id: cell source} for one kind of student: right, wrong (two mistakes) or crashing."""
    source = nbformat.read(ROOT / "notebooks" / f"{AID}.ipynb", as_version=4)
    right = {}
    for cell in source.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            keep = [
                line for line in cell.source.splitlines() if "### BEGIN SOLUTION" not in line and "### END" not in line
            ]
            right[meta["grade_id"]] = "\n".join(keep)
    if kind == "right":
        return right
    if kind == "wrong":
        return right | {
            "memory-prediction-answer": (WRONG / "memory-prediction-answer" / "answer_a.py").read_text(),
            "causal-mask-answer": (WRONG / "causal-mask-answer" / "upper_triangle.py").read_text(),
        }
    return {gid: "raise RuntimeError('this code crashes before it defines anything')" for gid in right}


def _fill_in(hub: Hub, name: str, kind: str) -> None:
    path = f"/api/contents/{AID}/{AID}.ipynb"
    status, model = hub.as_user(name, "GET", path)
    assert status == 200, f"{name} cannot open the fetched notebook: {status} {model}"
    answers = _answers(kind)
    for cell in model["content"]["cells"]:
        gid = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if gid in answers:
            assert "raise NotImplementedError" in "".join(cell["source"]), (
                f"the student version of {gid} has its solution"
            )
            cell["source"] = answers[gid]
    status, body = hub.as_user(name, "PUT", path, {"type": "notebook", "format": "json", "content": model["content"]})
    assert status == 200, f"{name} cannot save their answers: {status} {body}"


def _make(hub: Hub, target: str) -> subprocess.CompletedProcess:
    done = hub.run_as(
        hub.instructor,
        ["make", "--no-print-directory", *MAKE_ARGS, target, f"NB={AID}", f"EXCHANGE={hub.exchange}"],
        COURSE_BUILD_DIR=str(hub.build()),
    )
    assert done.returncode == 0, (
        f"make {target} failed as the instructor:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done


PROBE = r"""
import json, os, sys
out = {}
for path in sys.argv[1:]:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").read(1)
        out[path] = "read"
    except PermissionError:
        out[path] = "denied"
    except FileNotFoundError:
        out[path] = "missing"
print(json.dumps(out))
"""


def _probe(hub: Hub, name: str, paths: list[Path]) -> dict[str, str]:
    done = hub.run_as(name, [str(VENV_BIN / "python"), "-c", PROBE, *map(str, paths)])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


RESULT: dict = {}


def test_a_class_on_the_hub_end_to_end(hub):
    t0 = time.monotonic()
    _start_servers(hub)
    RESULT["server_mib"] = max(_user_rss_mib(n) for n in hub.students)  # an idle JupyterLab, no kernel yet
    status, services = hub.request("GET", "/hub/api/services")
    assert status == 200 and "idle-culler" in services, f"the idle culler is not a service of the hub: {services}"
    # a student's server has no formgrader; the instructor's has
    assert hub.as_user(hub.students[0], "GET", "/formgrader/")[0] == 404
    assert hub.as_user(hub.instructor, "GET", "/formgrader/")[0] == 200

    done = _make(hub, "release")
    assert f"released {AID}" in done.stdout
    outbound = hub.exchange / "transformers-course" / "outbound" / AID / f"{AID}.ipynb"
    assert "BEGIN SOLUTION" not in outbound.read_text() and "BEGIN HIDDEN TESTS" not in outbound.read_text()

    kinds = dict(zip(hub.students, ["right", "wrong", "crash"]))
    for name, kind in kinds.items():
        args = {"course_id": "transformers-course", "assignment_id": AID}
        status, listing = hub.as_user(name, "POST", "/assignments/fetch", args, form=True)
        assert status == 200 and listing.get("success"), f"{name} could not fetch {AID}: {status} {listing}"
        _fill_in(hub, name, kind)
        status, listing = hub.as_user(name, "POST", "/assignments/submit", args, form=True)
        assert status == 200 and listing.get("success"), f"{name} could not submit: {status} {listing}"
        owner = Path(pwd.getpwnam(name).pw_dir, AID, f"{AID}.ipynb").stat().st_uid
        assert owner == pwd.getpwnam(name).pw_uid, "the fetched copy belongs to the student"

    done = _make(hub, "collect")
    assert "collected 3 submission(s)" in done.stdout, done.stdout
    done = _make(hub, "autograde")
    assert "GRADING FAILED" not in done.stdout, done.stdout
    totals = {}
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[2] == "TOTAL":
            totals[parts[0]] = (float(parts[3]), float(parts[5]))
    right, wrong, crash = hub.students
    assert totals[right] == (13, 13), done.stdout
    assert totals[wrong] == (10, 13), done.stdout  # the prediction (1 point) and the mask (2 points) wrong
    assert totals[crash] == (0, 13), done.stdout
    done = _make(hub, "feedback")
    assert "feedback released to 3 student(s)" in done.stdout, done.stdout

    pages = {}
    for name in hub.students:
        args = {"course_id": "transformers-course", "assignment_id": AID}
        status, listing = hub.as_user(name, "POST", "/assignments/fetch_feedback", args, form=True)
        assert status == 200 and listing.get("success"), f"{name} could not fetch feedback: {status} {listing}"
        status, folder = hub.as_user(name, "GET", f"/api/contents/{AID}/feedback")
        assert status == 200 and len(folder["content"]) == 1, f"{name}'s feedback folder: {status} {folder}"
        stamp = folder["content"][0]["name"]
        status, page = hub.as_user(
            name, "GET", f"/api/contents/{AID}/feedback/{urllib.parse.quote(stamp)}/{AID}.html?type=file&format=text"
        )
        assert status == 200, f"{name} cannot open their feedback page: {status}"
        pages[name] = page["content"]
        assert "BEGIN HIDDEN TESTS" not in pages[name] and str(hub.build()) not in pages[name]
    assert "RuntimeError" in pages[crash] and "RuntimeError" not in pages[right]
    assert all("13" in p for p in pages.values())

    # nobody reads anyone else's work: each student, as their own Unix user
    course = hub.build() / "nbgrader"
    inbound = hub.exchange / "transformers-course" / "inbound"
    for name in hub.students:
        others = [s for s in hub.students if s != name]
        theirs = [Path(pwd.getpwnam(o).pw_dir) for o in others]
        private = {
            "the exchange's inbound folder (listing)": inbound,
            "the exchange's feedback folder (listing)": hub.exchange / "transformers-course" / "feedback",
            "the instructor's home": Path(pwd.getpwnam(hub.instructor).pw_dir),
            "the instructor's source (solutions, hidden tests)": course / "source" / AID / f"{AID}.ipynb",
            "the collected submissions": course / "collected" / others[0] / AID / f"{AID}.ipynb",
            "the gradebook": course / "gradebook.db",
            "the hub's database (password hashes)": hub.tmp / "state" / "jupyterhub.sqlite",
            **{f"{o}'s home": p for o, p in zip(others, theirs)},
            **{f"{o}'s answers": p / AID / f"{AID}.ipynb" for o, p in zip(others, theirs)},
        }
        seen = _probe(hub, name, list(private.values()))
        leaks = [what for what, path in private.items() if seen[str(path)] != "denied"]
        assert not leaks, f"{name} can read {leaks}: {seen}"
        own = _probe(hub, name, [Path(pwd.getpwnam(name).pw_dir) / AID / f"{AID}.ipynb"])
        assert set(own.values()) == {"read"}, "the probe itself works"
        # their own server cannot be used to reach outside their home either
        assert hub.as_user(name, "GET", f"/api/contents/../{others[0]}")[0] in (403, 404)
        # and no student can call another's server with their own token
        status, _ = hub.request("GET", f"/user/{others[0]}/api/contents", token=hub.user_tokens[name])
        assert status in (302, 403, 404), f"{name} reached {others[0]}'s server: {status}"

    # the formgrader lists the three graded submissions
    status, subs = hub.as_user(hub.instructor, "GET", f"/formgrader/api/submissions/{AID}")
    assert status == 200, f"formgrader API: {status} {subs}"
    assert {s["student"] for s in subs if s.get("autograded")} == set(hub.students), subs
    RESULT["seconds"] = time.monotonic() - t0
    print(
        f"\nthe class loop on the hub took {RESULT['seconds']:.0f} s (servers, release ... feedback, isolation); "
        f"a student's idle JupyterLab server: {RESULT['server_mib']:.0f} MiB resident"
    )


def test_the_formgrader_lists_the_submissions_in_a_browser(hub):
    """Item 5: the instructor's formgrader, in headless Chromium, lists the three submissions; a screenshot."""
    if "seconds" not in RESULT:
        pytest.skip("the end-to-end test did not get as far as grading")
    from test_slides_browser import CHROMIUM, browser_page, sync_playwright

    if sync_playwright is None or not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium and the playwright package")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with browser_page() as page:
        page.set_extra_http_headers({"Authorization": f"token {hub.user_tokens[hub.instructor]}"})
        page.goto(f"{hub.url}/user/{hub.instructor}/formgrader/manage_submissions/{AID}", wait_until="load")
        for name in hub.students:
            page.wait_for_selector(f"text={name}", timeout=60_000)
        for score in ("13 / 13", "10 / 13", "0 / 13"):  # the autograded scores, as the gradebook holds them
            page.wait_for_selector(f"text={score}", timeout=10_000)
        page.screenshot(path=str(SHOTS / "hub_formgrader.png"), full_page=True)
        assert page.external == [], f"the formgrader tried to load from the network: {page.external[:5]}"
