"""The multi-seed studies the chapters load: their plumbing, not their (slow) training."""

from __future__ import annotations

import json

import pytest
import torch

from dctutor import cli, config, metrics, studies


def test_kmeans_labels_separates_far_apart_blobs():
    g = torch.Generator().manual_seed(0)
    blobs = torch.cat([torch.randn(15, 4, generator=g) + 20 * k for k in range(3)])
    truth = torch.arange(3).repeat_interleave(15)
    labels = studies.kmeans_labels(blobs, n_init=2, seed=0, n_clusters=3)
    assert labels.shape == (45,) and set(labels.tolist()) == {0, 1, 2}
    assert metrics.cluster_acc(truth, labels) == 1.0
    # a NumPy copy in float32 gives the same clustering (it is clustered in float64 either way)
    same = studies.kmeans_labels(blobs.numpy().astype("float32"), n_init=2, seed=0, n_clusters=3)
    assert (same == labels).all()


def test_alpha_schedule_reads_a_warm_up():
    assert studies.alpha_schedule(10) == 10.0
    warm = studies.alpha_schedule("1→10@3")
    assert [warm(e) for e in (1, 2, 3, 4, 9)] == [1.0, 1.0, 1.0, 10.0, 10.0]
    assert studies.warmup_name(config.schedule("iic", "quick")).startswith("1→10@")


@pytest.mark.parametrize("profile", config.PROFILES)
def test_every_profile_names_the_studies_settings(profile):
    dec_s, iic_s = config.schedule("dec", profile), config.schedule("iic", profile)
    variants = studies.collapse_variants(dec_s)
    assert list(variants)[0] == "as in the question" and list(variants)[-1] == "all three"
    assert variants["all three"] == (True, dec_s["lr"], dec_s["update_interval"])
    kinds = [(k, v) for k, v, _ in studies.iic_settings(iic_s)]
    assert ("augmentation", iic_s["augmentation"]) in kinds and ("heads", "main head only") in kinds
    assert ("alpha", studies.warmup_name(iic_s)) in kinds
    assert ("alpha", f"{iic_s['alpha']:g}") not in kinds      # the default run serves as α = 1


def test_run_writes_one_file_per_seed_and_resumes(tmp_path, monkeypatch):
    calls = []

    def fake(seed, profile, device):
        calls.append(seed)
        return {"seed_squared": seed * seed}

    monkeypatch.setitem(studies.STUDIES, "fake", fake)
    studies.run("fake", 2, "quick", torch.device("cpu"), tmp_path, log=lambda line: None)
    studies.run("fake", 3, "quick", torch.device("cpu"), tmp_path, log=lambda line: None)
    assert calls == [0, 1, 2]                                 # seeds 0 and 1 were not rerun
    records = studies.load("fake", "quick", tmp_path)
    assert [r["result"]["seed_squared"] for r in records] == [0, 1, 4]
    assert records[0]["profile"] == "quick" and records[0]["device"].startswith("CPU")


def test_load_names_the_command_when_nothing_is_there(tmp_path, monkeypatch):
    monkeypatch.setitem(studies.STUDIES, "fake", lambda *a: {})
    with pytest.raises(FileNotFoundError, match="python -m dctutor study fake --profile full"):
        studies.load("fake", "full", tmp_path)
    with pytest.raises(ValueError, match="unknown study"):
        studies.folder("nope", "quick")


def test_committed_studies_are_loadable():
    """The chapters load these files; every study has at least three seeds committed."""
    for name in studies.STUDIES:
        records = studies.load(name, "quick")
        assert len(records) >= 3 and [r["seed"] for r in records] == list(range(len(records)))
        assert all(r["study"] == name and r["profile"] == "quick" for r in records)


def test_results_file_prefers_the_checkout(tmp_path, monkeypatch):
    monkeypatch.setattr(studies, "RESULTS", tmp_path / "results")
    (tmp_path / "results" / "x").mkdir(parents=True)
    (tmp_path / "results" / "x" / "runs.json").write_text(json.dumps({"runs": []}))
    assert studies.results_file("x/runs.json") == tmp_path / "results" / "x" / "runs.json"
    monkeypatch.setenv("DCTUTOR_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="neither in a checkout"):
        studies.results_file("missing/runs.json", download=False)


def test_cli_study_rejects_unknown_names(capsys):
    with pytest.raises(SystemExit):
        cli.main(["study", "nope"])
    assert "invalid choice" in capsys.readouterr().err
