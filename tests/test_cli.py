"""The command line: arguments, exit codes, the JSON it writes (quick profile, cheap methods)."""

import csv
import json
import subprocess
import sys

import pytest
import torch

from dctutor import bench, cli


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "dctutor", *args], capture_output=True,
                          text=True, env=env, timeout=600)


@pytest.mark.parametrize("args,needle", [
    (["run", "nope", "--dataset", "mnist-5k"], "invalid choice: 'nope'"),
    (["run", "kmeans", "--dataset", "emnist"], "invalid choice: 'emnist'"),
    (["run", "kmeans", "--dataset", "mnist-5k", "--seeds", "0"], "must be at least 1"),
    (["run", "kmeans", "--dataset", "mnist-5k", "--seed", "-1"], "must be at least 0"),
    (["run", "kmeans"], "--dataset"),
    (["bench", "--methods", "svm"], "invalid choice: 'svm'"),
])
def test_bad_arguments_exit_2_with_one_line(args, needle):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    assert exit_info.value.code == 2


@pytest.mark.parametrize("args,needle", [
    (["run", "nope", "--dataset", "mnist-5k"], "invalid choice: 'nope'"),
    (["run", "kmeans", "--dataset", "mnist-5k", "--seeds", "0"], "must be at least 1"),
    (["run", "kmeans", "--dataset", "mnist-5k", "--device", "tpu"], "not a torch device"),
])
def test_errors_are_one_line_without_traceback(args, needle):
    out = run_cli(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in out.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device(capsys):
    assert cli.main(["run", "kmeans", "--dataset", "mnist-5k", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDA is not available" in err[0]


def test_missing_dataset(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DCTUTOR_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("DCTUTOR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("dctutor.data._SYSTEM_DIRS", {"mnist": [], "fashion-mnist": []})
    code = cli.main(["run", "kmeans", "--dataset", "fashion-mnist", "--no-download"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "not found" in err[0] and str(tmp_path / "nothing") in err[0]


def test_run_writes_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DCTUTOR_PROFILE", "quick")
    path = tmp_path / "out" / "runs.json"
    code = cli.main(["run", "pca-kmeans", "--dataset", "mnist-5k", "--seeds", "2",
                     "--device", "cpu", "--json", str(path)])
    assert code == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and "seed 0" in out[0] and "seed 1" in out[1] and "±" in out[2]
    payload = json.loads(path.read_text())
    assert [r["seed"] for r in payload["runs"]] == [0, 1]
    for r in payload["runs"]:
        assert {"method", "dataset", "profile", "seed", "acc", "nmi", "ari", "seconds",
                "device", "versions"} <= r.keys()
        assert r["method"] == "pca-kmeans" and r["dataset"] == "mnist-5k" and r["profile"] == "quick"
        assert 0 < r["acc"] <= 1 and 0 < r["nmi"] <= 1 and r["seconds"] > 0
        assert "torch" in r["versions"] and "scikit-learn" in r["versions"]
    assert payload["summary"][0]["runs"] == 2


def test_bench_writes_tables(tmp_path, monkeypatch):
    monkeypatch.setenv("DCTUTOR_PROFILE", "quick")
    code = cli.main(["bench", "--methods", "kmeans", "pca-kmeans", "--datasets", "mnist-5k",
                     "--seeds", "1", "--device", "cpu", "--out", str(tmp_path)])
    assert code == 0
    rows = list(csv.DictReader(open(tmp_path / "summary.csv")))
    assert [r["method"] for r in rows] == ["kmeans", "pca-kmeans"]
    assert all(r["runs"] == "1" and float(r["acc_mean"]) > 0.3 for r in rows)
    md = (tmp_path / "summary.md").read_text()
    assert "| mnist-5k | kmeans | 1 |" in md and "python -m dctutor bench" in md
    meta = json.loads((tmp_path / "runs.json").read_text())["meta"]
    assert meta["profile"] == "quick" and meta["device"].startswith("CPU")


def test_bench_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DCTUTOR_PROFILE", "quick")
    args = ["bench", "--methods", "pca-kmeans", "--datasets", "mnist-5k", "--device", "cpu",
            "--out", str(tmp_path)]
    assert cli.main(args + ["--seeds", "1"]) == 0
    first = json.loads((tmp_path / "runs.json").read_text())["runs"]
    capsys.readouterr()
    assert cli.main(args + ["--seeds", "2"]) == 0
    assert "pca-kmeans seed 0: already in" in capsys.readouterr().out
    runs = json.loads((tmp_path / "runs.json").read_text())["runs"]
    assert [r["seed"] for r in runs] == [0, 1] and runs[0] == first[0]   # seed 0 kept, not rerun
    monkeypatch.setenv("DCTUTOR_PROFILE", "full")
    assert cli.main(args + ["--profile", "full", "--seeds", "1"]) == 2
    assert "holds runs of profile quick" in capsys.readouterr().err


def test_summary_statistics():
    rows = [{"dataset": "d", "method": "m", "profile": "quick", "acc": a, "nmi": 0.5, "ari": 0.4,
             "seconds": 1.0, "train_samples_per_s": None, "device": "cpu"} for a in (0.8, 0.9)]
    s = bench.summarise(rows)[0]
    assert s["acc_mean"] == pytest.approx(0.85) and s["acc_std"] == pytest.approx(0.0707, abs=1e-4)
    assert bench.format_pm(s["acc_mean"], s["acc_std"]) == "85.0 ± 7.1"
