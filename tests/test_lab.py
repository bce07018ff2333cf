"""`make lab NO_BROWSER=1` serves JupyterLab on notebook 00 (headless)."""

import json
import os
import secrets
import socket
import subprocess
import time
import urllib.request

import pytest
from notebook_runner import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.notebook
def test_make_lab_headless_serves_notebook_00():
    port, token = _free_port(), secrets.token_hex(8)
    args = f"--port={port} --ip=127.0.0.1 --IdentityProvider.token={token} --ServerApp.port_retries=0"
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "lab", "NO_BROWSER=1", f"LAB_ARGS={args}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/contents/notebooks/00_start_here.ipynb?content=0&token={token}"
        deadline, last = time.time() + 90, None
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    assert r.status == 200 and b'"name": "00_start_here.ipynb"' in r.read().replace(b'":"', b'": "')
                    break
            except OSError as e:
                last = e
                assert proc.poll() is None, f"make lab exited early: {proc.stdout.read()[-3000:]}"
                time.sleep(1)
        else:
            pytest.fail(f"JupyterLab did not answer on port {port} within 90 s: {last}")
        page = (
            urllib.request.urlopen(
                f"http://127.0.0.1:{port}/lab/tree/notebooks/00_start_here.ipynb?token={token}", timeout=10
            )
            .read()
            .decode()
        )
        assert "JupyterLab" in page
        answer = json.load(  # offline: JupyterLab neither asks to fetch Jupyter news nor checks for updates
            urllib.request.urlopen(
                f"http://127.0.0.1:{port}/lab/api/settings/@jupyterlab/apputils-extension:notification?token={token}",
                timeout=10,
            )
        )
        defaults = {k: v.get("default") for k, v in answer["schema"]["properties"].items()}  # overrides land here
        settings = {**defaults, **answer["settings"]}
        assert settings["fetchNews"] == "false" and settings["checkForUpdates"] is False, settings
        answer = json.load(  # every cell stays rendered, so a jupyterlab-deck slide is never drawn empty
            urllib.request.urlopen(
                f"http://127.0.0.1:{port}/lab/api/settings/@jupyterlab/notebook-extension:tracker?token={token}",
                timeout=10,
            )
        )
        assert answer["schema"]["properties"]["windowingMode"]["default"] == "none", answer["schema"]["properties"][
            "windowingMode"
        ]
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
