"""Student notebooks (``python -m dctutor student-notebooks OUT_DIR``, :mod:`dctutor.student`).

* No solution text survives: on a synthetic notebook with every kind of solution, and on every
  chapter of the book. The chapters' student notebooks are made from the reader notebooks
  (``notebooks/``), where each solution is a Markdown cell tagged ``solution``; in MyST
  notebooks solutions are found here with markdown-it (the parser MyST builds on),
  independently of the line scanner in :mod:`dctutor.student`.
* The chapters' student notebooks read like the reader notebooks: no MyST, exercises as
  numbered headings, no folded solution left.
* The student notebooks run: the synthetic one top to bottom; each chapter's up to its first
  exercise. The cells before a chapter's first exercise are the chapter's own cells unchanged
  (checked for every chapter), and nbval already executes every chapter, so by default only the
  introduction is executed here, to keep CI fast; ``DCTUTOR_STUDENT_EXECUTE=all`` executes every
  chapter's student notebook, top to bottom (minutes per chapter).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest
from markdown_it import MarkdownIt
from mdit_py_plugins.colon_fence import colon_fence_plugin

from dctutor import cli, student

REPO = Path(__file__).resolve().parent.parent
BOOK = REPO / "book"
CHAPTERS = student.chapter_sources(REPO / "notebooks")  # the reader notebooks
EXECUTE_ALWAYS = {"00_intro"}


# -- an independent reading of the solutions -------------------------------------------------
_MD = MarkdownIt("commonmark").use(colon_fence_plugin)


def solution_bodies(markdown: str) -> list[str]:
    """The bodies of the ``{solution}`` directives in ``markdown``, nested ones included."""
    bodies = []
    for token in _MD.parse(markdown):
        if token.type not in ("fence", "colon_fence"):
            continue
        info = token.info.strip()
        if info.startswith("{solution}"):
            bodies.append(token.content)
        elif info.startswith("{"):  # another directive: its content is MyST too
            bodies.extend(solution_bodies(token.content))
    return bodies


def markdown_text(nb) -> str:
    return "\n".join(_src(c) for c in nb["cells"] if c["cell_type"] == "markdown")


def _src(cell) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def solution_cells(nb) -> list[str]:
    """The reader notebooks' solutions: Markdown cells tagged ``solution``."""
    return [_src(c) for c in nb["cells"] if c["cell_type"] == "markdown"
            and student.SOLUTION_TAG in c.get("metadata", {}).get("tags", [])]


def revealing_lines(original) -> set[str]:
    """Lines of the solutions that appear nowhere else in the notebook (long enough to matter)."""
    bodies = [b for c in original["cells"] if c["cell_type"] == "markdown"
              for b in solution_bodies(_src(c))] + solution_cells(original)
    outside = "\n".join(_src(c) for c in original["cells"])
    for body in bodies:  # the notebook minus its solutions
        outside = outside.replace(body, "")
    return {line.strip() for body in bodies for line in body.splitlines()
            if len(line.strip()) >= 20 and line.strip() not in outside}


# -- a synthetic notebook with every kind of solution ------------------------------------------
def synthetic_notebook():
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    cells = [
        md("# A chapter\n\nSome text with $x^2$."),
        code("x = 1\nprint(x)"),
        code("assert x == 1", metadata={"tags": ["remove-cell"]}),  # a chapter check: kept
        md("## Exercises\n\n"
           ":::{exercise}\n:label: ex-a\n\nCompute the answer.\n:::\n\n"
           "````{solution} ex-a\n:class: dropdown\n\nSECRET_A in prose.\n\n"
           "```python\nanswer = 42  # SECRET_A2\n```\n````\n\n"
           "::::{solution} ex-a\n:class: dropdown\nSECRET_B\n:::{note}\nSECRET_B2 nested\n:::\n"
           "::::\n\nText after the solutions stays."),
        code("answer = 6 * 7  # SECRET_C", metadata={"tags": ["exercise"]}),
        code("assert answer == 42  # SECRET_C2", metadata={"tags": ["remove-cell"]}),
        md("```{solution-start} ex-a\n:class: dropdown\n```\n\nSECRET_D gated prose"),
        code("secret_e = 'SECRET_E'"),
        md("More SECRET_D2.\n\n```{solution-end}\n```\n\nText after the gate stays."),
        code("print('SECRET_F')", metadata={"tags": ["solution"]}),
        md(":::{exercise}\n:label: ex-b\nAnother.\n:::\n\n"
           ":::{solution} ex-b\n:class: dropdown\nSECRET_G\n:::"),
        code("assert 'SECRET_G2'", metadata={"tags": ["remove-cell"]}),
        code("y = x + 1\nassert y == 2"),
        md("A code block that only shows the syntax:\n\n"
           "```md\n:::{solution} ex-b\nnot a solution, kept\n:::\n```"),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["jupytext"] = {"formats": "ipynb,md:myst"}
    return json.loads(nbformat.writes(nb))


def test_synthetic_notebook_has_no_solutions():
    original = synthetic_notebook()
    # the independent reader sees the solutions it must
    found = "\n".join(solution_bodies(markdown_text(original)))
    assert all(s in found for s in ("SECRET_A", "SECRET_A2", "SECRET_B", "SECRET_B2", "SECRET_G"))

    nb, report = student.make_student_notebook(original)
    text = json.dumps(nb)
    leaked = [s for s in ("SECRET_A", "SECRET_B", "SECRET_C", "SECRET_D", "SECRET_E",
                          "SECRET_F", "SECRET_G") if s in text]
    assert not leaked, f"solution text left in the student notebook: {leaked}"
    assert not solution_bodies(markdown_text(nb))
    assert report.solutions_removed == 4 and report.exercises_blanked == 1
    sources = [_src(c) for c in nb["cells"]]
    assert student.STUB in sources
    assert "assert x == 1" in sources  # the chapter's own hidden check is kept
    for kept in ("Text after the solutions stays.", "Text after the gate stays.",
                 "not a solution, kept", "Compute the answer."):
        assert kept in text
    assert "jupytext" not in nb["metadata"]
    assert original["cells"][4]["source"] != student.STUB  # the input is not modified
    nbformat.validate(nbformat.reads(json.dumps(nb), as_version=4))


def test_strip_solutions_keeps_text_without_solutions():
    text = "# Title\n\n```{note}\nA note.\n```\n\n```python\nx = 1\n```\n"
    assert student.strip_solutions(text) == (text, 0, False, False)


def test_cli_writes_student_notebooks(tmp_path, capsys):
    book = tmp_path / "book"
    book.mkdir()
    (book / "01_demo.ipynb").write_text(json.dumps(synthetic_notebook()))
    (book / "references.md").write_text("# References\n")  # not a chapter
    out = tmp_path / "students"
    assert cli.main(["student-notebooks", str(out), "--book", str(book)]) == 0
    assert [p.name for p in out.iterdir()] == ["01_demo.ipynb"]
    assert "SECRET" not in (out / "01_demo.ipynb").read_text()
    assert "1 student notebook(s)" in capsys.readouterr().out
    assert cli.main(["student-notebooks", str(out), "--book", str(tmp_path / "nope")]) == 2
    assert cli.main(["student-notebooks", str(book), "--book", str(book)]) == 2


def test_chapter_from_markdown_when_notebook_missing(tmp_path):
    (tmp_path / "02_md_only.md").write_text(
        "---\njupytext:\n  text_representation:\n    format_name: myst\nkernelspec:\n"
        "  name: python3\n  display_name: Python 3\n---\n\n# Two\n\n"
        "```{code-cell} ipython3\n:tags: [exercise]\nsecret = 'SECRET'\n```\n\n"
        ":::{solution} ex\nSECRET prose\n:::\n")
    [(source, target, report)] = student.write_student_notebooks(tmp_path / "out", tmp_path)
    assert source.suffix == ".md" and report.exercises_blanked == 1
    assert "SECRET" not in target.read_text()


# -- the book's chapters ----------------------------------------------------------------------
def first_exercise(nb) -> int:
    """Index of the first cell that is an exercise (tagged code cell, ``{exercise}`` text or a
    reader notebook's *Exercise N* heading)."""
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code" and student.EXERCISE_TAG in student._tags(cell):
            return i
        if cell["cell_type"] == "markdown" and re.search(r"^#{2,6} Exercise \d+", _src(cell),
                                                         re.M):
            return i
        if cell["cell_type"] == "markdown" and any(
                t.type in ("fence", "colon_fence") and t.info.strip().startswith("{exercise}")
                for t in _MD.parse(_src(cell))):
            return i
    return len(nb["cells"])


chapter_ids = [p.stem for p in CHAPTERS]


@pytest.mark.parametrize("source", CHAPTERS, ids=chapter_ids)
def test_chapter_student_notebook_has_no_solutions(source):
    original = student.read_notebook(source)
    nb, _ = student.make_student_notebook(original)
    assert not solution_bodies(markdown_text(nb)), "a {solution} block survived"
    if re.search(r"^#{2,6} Exercise \d+", markdown_text(original), re.M):
        assert solution_cells(original), "exercises, but no solution cells"
    assert not solution_cells(nb) and "Solution to Exercise" not in markdown_text(nb)
    text = "\n".join(_src(c) for c in nb["cells"])
    leaked = sorted(line for line in revealing_lines(original) if line in text)
    assert not leaked, f"solution text left in the student notebook: {leaked[:5]}"
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")


@pytest.mark.parametrize("source", CHAPTERS, ids=chapter_ids)
def test_chapter_student_notebook_reads_like_the_reader_notebook(source):
    from test_reader import RAW_MYST

    original = student.read_notebook(source)
    nb, report = student.make_student_notebook(original)
    text = markdown_text(nb)
    for pattern in RAW_MYST:
        assert not re.search(pattern, text, re.M), f"raw MyST ({pattern}) in {source.name}"
    heading = r"^#{2,6} (Exercise \d+(?:\.\d+)*)"
    headings = re.findall(heading, text, re.M)
    assert headings == re.findall(heading, markdown_text(original), re.M)
    assert report.solutions_removed == len(solution_cells(original))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "profile-form" in code[1]["metadata"].get("tags", [])


@pytest.mark.parametrize("source", CHAPTERS, ids=chapter_ids)
def test_chapter_student_notebook_runs_up_to_first_exercise(source, tmp_path, monkeypatch):
    original = student.read_notebook(source)
    nb, _ = student.make_student_notebook(original)
    head = nb["cells"][:first_exercise(nb)]
    # Up to the first exercise the student's code is the chapter's own, which nbval executes.
    original_code = [_src(c) for c in original["cells"][:first_exercise(original)]
                     if c["cell_type"] == "code"]
    assert [_src(c) for c in head if c["cell_type"] == "code"] == original_code

    everything = os.environ.get("DCTUTOR_STUDENT_EXECUTE") == "all"
    if source.stem not in EXECUTE_ALWAYS and not everything:
        pytest.skip("its code up to the first exercise is the chapter's own, executed by nbval; "
                    "DCTUTOR_STUDENT_EXECUTE=all executes the student notebook here too")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("DCTUTOR_PROFILE", os.environ.get("DCTUTOR_PROFILE", "quick"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # DCTUTOR_STUDENT_EXECUTE=all: the whole student notebook, top to bottom, stubs included
    cells = nb["cells"] if everything else head
    truncated = nbformat.reads(json.dumps(dict(nb, cells=cells)), as_version=4)
    client = nbclient.NotebookClient(truncated, timeout=900, kernel_name=_KERNEL,
                                     kernel_manager_class=_current_env_kernel_manager(),
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first failing cell


def test_synthetic_student_notebook_runs_top_to_bottom(tmp_path):
    nbclient = pytest.importorskip("nbclient")
    nb, _ = student.make_student_notebook(synthetic_notebook())
    client = nbclient.NotebookClient(nbformat.reads(json.dumps(nb), as_version=4), timeout=120,
                                     kernel_name=_KERNEL,
                                     kernel_manager_class=_current_env_kernel_manager(),
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()


# A kernel in this very environment (the one running pytest), whatever kernels are installed.
_KERNEL = "dctutor-current-env"


def _current_env_kernel_manager():
    import ipykernel.kernelspec
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import KernelManager

    class CurrentEnvSpecs(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            if kernel_name == _KERNEL:
                spec = ipykernel.kernelspec.get_kernel_dict()
                spec["argv"][0] = sys.executable
                return KernelSpec(resource_dir=ipykernel.kernelspec.RESOURCES, **spec)
            return super().get_kernel_spec(kernel_name)

    class CurrentEnvKernelManager(KernelManager):
        def __init__(self, **kwargs):
            kwargs.setdefault("kernel_spec_manager", CurrentEnvSpecs())
            super().__init__(**kwargs)

    return CurrentEnvKernelManager
