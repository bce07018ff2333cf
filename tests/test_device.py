import random

import numpy as np
import pytest
import torch
from course_utils.device import get_device, seed_everything
from course_utils.tools.environment import environment_report


def test_auto_picks_an_available_device():
    d = get_device("auto")
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert d.type == expected
    torch.zeros(2, device=d)  # usable


def test_explicit_names():
    assert get_device("cpu") == torch.device("cpu")
    assert get_device("CPU") == torch.device("cpu")
    assert get_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("name", ["tpu", "gpu", "", "cuda0"])
def test_unknown_name_is_a_clear_error(name):
    with pytest.raises(ValueError, match="unknown device"):
        get_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_unavailable_cuda_says_so():
    with pytest.raises(ValueError, match="no CUDA GPU"):
        get_device("cuda")


def test_wrong_type():
    with pytest.raises(TypeError, match="must be a string"):
        get_device(3)


def test_seed_everything_repeats_all_generators():
    def draw():
        return random.random(), np.random.rand(), torch.rand(3).tolist()

    seed_everything(123)
    a = draw()
    seed_everything(123)
    assert draw() == a
    seed_everything(124)
    assert draw() != a


@pytest.mark.parametrize("bad,err", [(1.5, TypeError), ("1", TypeError), (True, TypeError), (-1, ValueError)])
def test_seed_validation(bad, err):
    with pytest.raises(err):
        seed_everything(bad)


def test_environment_report_lists_versions_device_and_data():
    r = environment_report()
    assert r["torch"] == torch.__version__
    assert r["device (auto)"] == str(get_device("auto"))
    assert all(v == "ok" for k, v in r.items() if k.startswith("data: ")), r
