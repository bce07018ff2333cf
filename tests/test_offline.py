"""The offline guard blocks non-loopback connections, in-process and in notebook kernels."""

import subprocess
import sys

import nbformat
import pytest
from notebook_runner import NotebookFailed, ROOT, run_notebook


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)


def test_guard_blocks_remote_and_allows_loopback():
    code = (
        "from course_utils.tools.offline import install_guard, OfflineError\n"
        "install_guard()\n"
        "import socket, urllib.request\n"
        "srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen()\n"
        "c = socket.create_connection(srv.getsockname()); c.close(); print('loopback ok')\n"
        "for call in (lambda: urllib.request.urlopen('http://example.com', timeout=2),\n"
        "             lambda: socket.create_connection(('93.184.215.14', 80), timeout=2)):\n"
        "    try:\n"
        "        call(); print('NOT BLOCKED')\n"
        "    except OfflineError as e:\n"
        "        print('blocked')\n"
        "    except Exception as e:\n"
        "        print('other', type(e).__name__, e)\n"
    )
    r = _run(code)
    assert r.stdout.split() == ["loopback", "ok", "blocked", "blocked"], r.stdout + r.stderr


def test_kernels_get_the_guard_from_the_test_environment():
    # conftest puts tests/offline_site on PYTHONPATH with COURSE_OFFLINE_GUARD=1
    r = _run(
        "from course_utils.tools.offline import guard_installed; import os; "
        "print(guard_installed(), os.environ['HF_HUB_OFFLINE'])"
    )
    assert r.stdout.split() == ["True", "1"], r.stdout + r.stderr


def _notebook(tmp_path, source):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("SMOKE = True", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(source),
    ]
    path = tmp_path / "network.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.mark.notebook
def test_guard_catches_a_notebook_cell_that_goes_online(tmp_path):
    path = _notebook(tmp_path, 'import urllib.request\nurllib.request.urlopen("http://example.com")')
    with pytest.raises(NotebookFailed, match="OfflineError"):
        run_notebook(path)


@pytest.mark.notebook
def test_guard_catches_a_network_call_the_notebook_swallows(tmp_path):
    path = _notebook(
        tmp_path,
        'import urllib.request\ntry:\n    urllib.request.urlopen("http://example.com")\nexcept Exception:\n    pass',
    )
    with pytest.raises(NotebookFailed, match="tried to reach the network"):
        run_notebook(path)
