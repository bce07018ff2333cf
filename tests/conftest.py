"""Shared set-up: notebook kernels started by the tests run in SMOKE mode, headless and offline."""

import os
import sys
import tempfile
from pathlib import Path

from course_utils.paths import ROOT

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ helpers (notebook_runner)
sys.path.insert(1, str(ROOT / "scripts"))  # the scripts tests import by name: nbsync, pair_notebooks, build_slides

_tmp = Path(tempfile.mkdtemp(prefix="course-tests-"))
for var in ("JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "IPYTHONDIR", "MPLCONFIGDIR"):
    os.environ.setdefault(var, str(_tmp / var.lower()))
os.environ.update(
    {
        "COURSE_SMOKE": "1",
        "COURSE_HEADLESS": "1",
        "COURSE_OFFLINE_GUARD": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT / "tests" / "offline_site"), os.environ.get("PYTHONPATH")])
        ),
    }
)
