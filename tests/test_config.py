import random

import numpy as np
import pytest
import torch

from dctutor import config


def test_profile_from_environment(clean_env):
    clean_env.setenv("DCTUTOR_PROFILE", "quick")
    assert config.profile() == "quick"
    clean_env.setenv("DCTUTOR_PROFILE", "FULL")
    assert config.profile() == "full"
    clean_env.setenv("DCTUTOR_PROFILE", "laptop")
    assert config.profile() == "laptop"


def test_profile_unset_follows_cuda(clean_env):
    expected = "full" if torch.cuda.is_available() else "quick"
    assert config.profile() == expected


def test_profile_rejects_unknown_value(clean_env):
    clean_env.setenv("DCTUTOR_PROFILE", "fast")
    with pytest.raises(ValueError, match="quick, laptop, full"):
        config.profile()


def test_device_default_and_override(clean_env):
    assert config.device().type in ("cuda", "mps", "cpu")
    clean_env.setenv("DCTUTOR_DEVICE", "cpu")
    assert config.device() == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_is_a_clear_error(clean_env):
    clean_env.setenv("DCTUTOR_DEVICE", "cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        config.device()


def test_bad_device_name(clean_env):
    with pytest.raises(ValueError, match="not a torch device"):
        config.device("gpu-please")


def test_seed_everything_repeats_all_generators():
    config.seed_everything(123)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    config.seed_everything(123)
    b = (random.random(), np.random.rand(), torch.rand(1).item())
    assert a == b
    with pytest.raises(ValueError):
        config.seed_everything(-1)


def test_schedules_have_the_same_keys_in_every_profile():
    quick, laptop, full = (config.SCHEDULES[p] for p in ("quick", "laptop", "full"))
    assert quick.keys() == laptop.keys() == full.keys()
    for section in quick:
        assert quick[section].keys() == laptop[section].keys() == full[section].keys(), section
        assert quick[section]["dataset"] == "mnist-5k"
        assert laptop[section]["dataset"] == full[section]["dataset"] == "mnist"


def test_laptop_profile_is_full_data_with_shorter_schedules():
    """Same code paths as full (same data, same keys), never more steps; chapter 6's methods the
    same schedule in both, so their 70k results serve both profiles (only the first page's
    illustrations are cut)."""
    laptop, full = config.SCHEDULES["laptop"], config.SCHEDULES["full"]
    assert set(config.MANIFOLD_PAGE_KEYS) <= full["manifold"].keys()
    for key, value in full["manifold"].items():
        if key not in config.MANIFOLD_PAGE_KEYS:
            assert laptop["manifold"][key] == value, key
    for section in laptop:
        for key, value in laptop[section].items():
            if key.endswith("num_epochs") or key.endswith("max_steps"):
                assert value <= full[section][key], f"{section}/{key}"


def test_setup_prints_the_laptop_profile(clean_env, capsys):
    clean_env.setenv("DCTUTOR_PROFILE", "laptop")
    chosen = config.setup("dec", seed=0)
    assert "profile : laptop" in capsys.readouterr().out
    assert chosen.schedule["dataset"] == "mnist"


def test_schedule_lookup_and_errors(clean_env):
    clean_env.setenv("DCTUTOR_PROFILE", "full")
    assert config.schedule("dec")["dataset"] == "mnist"
    s = config.schedule("dec")
    s["lr"] = 99  # a copy: the table is not changed
    assert config.schedule("dec")["lr"] != 99
    with pytest.raises(ValueError, match="no schedule section"):
        config.schedule("nope")


def test_setup_prints_what_it_chose(clean_env, capsys):
    clean_env.setenv("DCTUTOR_PROFILE", "quick")
    chosen = config.setup("sdae", seed=3)
    out = capsys.readouterr().out
    assert "profile : quick" in out and "seed    : 3" in out and "device" in out
    assert chosen.schedule["dataset"] == "mnist-5k"
