"""The GPU command's plumbing: the estimate's bookkeeping and the chapter runner (no training)."""

from __future__ import annotations

import json

import nbformat
import pytest

from dctutor import cli, config, estimate, fullrun


def fake_costs(profile):
    """One millisecond and one GFLOP per step, for every kind of step the plan names."""
    kinds = {kind for _, _, kind, _ in estimate.plan(profile)}
    return {k: estimate.StepCost(k, 100, 1e-3, 1e9) for k in kinds}


@pytest.mark.parametrize("profile", config.PROFILES)
def test_plan_counts_every_chapter_and_method(profile):
    parts = {part for part, *_ in estimate.plan(profile)}
    assert {"ch1", "ch2", "ch4", "ch5"} <= parts
    assert {f"bench {m}" for m in ("ae-kmeans", "sdae-kmeans", "dec", "iic")} <= parts
    assert all(steps > 0 for *_, steps in estimate.plan(profile))


def test_table_multiplies_bench_by_seeds_and_datasets():
    costs = fake_costs("full")
    rows, totals = estimate.table("full", costs, seeds=5, datasets=2)
    iic = next(r for r in rows if r["part"] == "bench iic")
    s = config.schedule("iic", "full")
    assert iic["runs"] == 10 and iic["steps"] == s["num_epochs"] * 70
    assert iic["seconds"] == pytest.approx(10 * iic["steps"] * 1e-3)
    text = estimate.render(rows, totals, costs, "test device", budget_s=1.0)
    assert "does NOT fit" in text and "largest parts" in text and "an estimate" in text


def test_smoke_scale_shrinks_the_plan(monkeypatch):
    full = sum(steps for *_, steps in estimate.plan("full"))
    monkeypatch.setenv("DCTUTOR_SMOKE", "1")
    assert config.smoke_scale()
    assert sum(steps for *_, steps in estimate.plan("full")) < full / 50


def test_run_chapter_records_time_peak_memory_and_errors(tmp_path):
    good = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1 + 1")])
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("assert 1 == 2, 'story broke'")])
    for name, nb in (("01_good", good), ("02_bad", bad)):
        nbformat.write(nb, tmp_path / f"{name}.ipynb")
    logs = []
    records = fullrun.run_chapters(tmp_path / "out", "quick", logs.append, book=tmp_path)
    by_name = {r["chapter"]: r for r in records}
    assert by_name["01_good"]["ok"] and by_name["01_good"]["seconds"] > 0
    assert by_name["01_good"]["peak_gpu_bytes"] is None or by_name["01_good"]["peak_gpu_bytes"] >= 0
    assert not by_name["02_bad"]["ok"] and "story broke" in by_name["02_bad"]["error"]
    saved = json.loads((tmp_path / "out" / "runtimes-quick.json").read_text())
    assert [r["chapter"] for r in saved["chapters"]] == ["01_good", "02_bad"]
    # resumable: the good chapter is not run again, the failed one is
    logs.clear()
    fullrun.run_chapters(tmp_path / "out", "quick", logs.append, book=tmp_path)
    assert any("01_good: already done" in line for line in logs)
    assert any("02_bad: running" in line for line in logs)


def test_full_run_rejects_a_missing_device(capsys):
    assert cli.main(["full-run", "--device", "cuda:7", "--estimate-only"]) == 2
    assert "cuda" in capsys.readouterr().err


def test_keep_going_reports_a_crash_after_a_failed_check(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("assert False, 'a hidden check'"),
        nbformat.v4.new_code_cell("import torch; torch.zeros(2) @ torch.zeros(3)")])
    nbformat.write(nb, tmp_path / "03_x.ipynb")
    rec = fullrun.run_chapter(tmp_path / "03_x.ipynb", keep_going=True)
    assert not rec["ok"] and rec["only_failed_checks"]          # the crash may follow from it
    assert "cell 0: AssertionError" in rec["error"] and "cell 1: RuntimeError" in rec["error"]
    nb.cells.reverse()                                          # a crash before any failed check
    nbformat.write(nb, tmp_path / "03_x.ipynb")
    rec = fullrun.run_chapter(tmp_path / "03_x.ipynb", keep_going=True)
    assert not rec["only_failed_checks"] and rec["error"].startswith("cell 0: RuntimeError")


def test_projection_is_a_labelled_range():
    lines = estimate.projection_lines("full", fake_costs("full"))
    assert "an estimate" in lines[0] and "TFLOP/s" in lines[0]
    assert any(line.strip().startswith("total") and "–" in line for line in lines)
