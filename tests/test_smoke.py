"""The smoke run of each profile: every code path, the profile's shapes, a handful of steps.

This is what keeps the ``full`` profile, which needs a GPU to run for real, from breaking unseen:
every training call of the chapters and every benchmark method runs here on the CPU with the
full schedule's widths, batch sizes, augmentations, pooling and head sizes, on the full-size
data loader, and every schedule entry must be read by it.
"""

from __future__ import annotations

import os
import re

import pytest
import torch

from conftest import shared_data_root
from dctutor import config, smoke

COUNT = re.compile(r"(epochs|steps|subset|points|restarts|n_init|seeds|repeats|interval)$")


def test_every_count_entry_is_capped():
    """A new epoch/step/subset entry must be cut down by the smoke run, or CI would train for real."""
    for profile, table in config.SCHEDULES.items():
        for section, entries in table.items():
            for key in entries:
                if COUNT.search(key) or key == "eval_every":
                    assert key in smoke.CAPS, f"{profile}/{section}/{key} is a count the smoke leaves uncapped"
    known = {k for table in config.SCHEDULES.values() for e in table.values() for k in e}
    assert set(smoke.CAPS) <= known, f"caps for entries no schedule has: {set(smoke.CAPS) - known}"


def test_smoke_schedules_keep_shapes_and_cut_counts():
    full, capped = config.schedule(None, "full"), smoke.smoke_schedules("full")
    assert capped["iic"]["channels"] == full["iic"]["channels"]
    assert capped["iic"]["batch_size"] == full["iic"]["batch_size"]
    assert capped["sdae"]["dims"] == full["sdae"]["dims"]
    assert capped["dec"]["fashion_subset"] == smoke.CAPS["fashion_subset"]   # None ("all") capped
    assert capped["sdae"]["finetune_num_epochs"] == 1
    section = capped["dec"]
    section["lr"], section.get("tol")
    assert {"lr", "tol"} <= section.read and "lr" not in section.unread()


def test_recorder_survives_config_schedule_copies():
    schedules = smoke.smoke_schedules("quick")
    with smoke.installed("quick", schedules):
        config.schedule("iic", "quick")["channels"]
    assert "channels" in schedules["iic"].read
    assert config.SCHEDULES["quick"] is not schedules          # restored afterwards


@pytest.mark.parametrize("profile", config.PROFILES)
def test_smoke_run_reaches_every_code_path_and_schedule_entry(profile, monkeypatch):
    root = shared_data_root()
    if root is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have the full datasets (../shared/data) for the smoke run")
        pytest.skip("no local copy of MNIST / Fashion-MNIST (set DCTUTOR_DATA)")
    monkeypatch.setenv("DCTUTOR_DATA", root)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    unread = smoke.run(profile, torch.device("cpu"), log=lambda line: None)
    missing = {section: sorted(keys) for section, keys in unread.items() if keys}
    assert not missing, f"schedule entries no smoke code path reads: {missing}"
