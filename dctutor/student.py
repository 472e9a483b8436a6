"""Student notebooks: every chapter with its solutions removed and its exercises blanked.

``python -m dctutor student-notebooks OUT_DIR`` writes one notebook per chapter into ``OUT_DIR``,
made from the reader notebooks (``notebooks/NN_name.ipynb``, :mod:`dctutor.reader`), so that a
student's notebook reads like the reader's: plain Jupyter Markdown, the profile form, the checks
folded. ``--from book`` makes them from other notebooks, or from MyST sources (``NN_name.md``,
converted with Jupytext, MyST left as it is). In each copy

* every Markdown cell tagged ``solution`` is removed (the reader notebooks put each solution in
  a cell of its own, folded in ``<details>``);
* every ``{solution}`` block is removed from the markdown cells — backtick fences
  (```` ```{solution} ex-label ````) and colon fences (``:::{solution} ex-label``), nested
  fences inside them included — as is everything between a gated ``{solution-start}`` and its
  ``{solution-end}``, code cells included;
* code cells tagged ``solution`` are removed (code that runs or checks a solution), and so are
  the hidden (``remove-cell``) cells right after an ``exercise`` cell or right after a removed
  solution: by the book's convention a hidden cell right after a result asserts that result,
  here the answer the student has not written yet (and would otherwise be shown);
* code cells tagged ``exercise`` keep their place but their source becomes ``# your code here``;
* outputs, execution counts and the Jupytext pairing metadata are dropped.

Everything else — the guarded install cell, the setup, the hidden checks of the chapter's own
results — is kept, so the notebook runs top to bottom (DEVELOPERS.md, "Exercises and
solutions", gives the conventions chapters follow for this to hold).

Notebooks are read and written as plain JSON (nbformat 4), so this needs nothing beyond the
standard library unless a chapter has to be converted from its ``.md`` (Jupytext).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

STUB = "# your code here"
EXERCISE_TAG = "exercise"
SOLUTION_TAG = "solution"
HIDDEN_TAG = "remove-cell"
CHAPTER_GLOB = "[0-9][0-9]_*"

# A fence opener or closer: up to 3 spaces, then 3+ backticks or 3+ colons, then the rest.
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<marker>`{3,}|:{3,})(?P<info>.*)$")
_DIRECTIVE = re.compile(r"^\s*\{(?P<name>[A-Za-z0-9_:.+-]+)\}")
_SOLUTION_DIRECTIVES = {"solution", "solution-start", "solution-end"}


@dataclass
class Report:
    """What :func:`make_student_notebook` changed, for the command's summary line."""

    solutions_removed: int = 0
    exercises_blanked: int = 0
    cells_removed: int = 0
    notes: list[str] = field(default_factory=list)

    def __str__(self):
        return (f"{self.solutions_removed} solution(s) removed, "
                f"{self.exercises_blanked} exercise cell(s) blanked, "
                f"{self.cells_removed} cell(s) dropped")


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _tags(cell) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []) or [])


def _directive(info: str) -> str | None:
    match = _DIRECTIVE.match(info)
    return match.group("name") if match else None


class Stripped(NamedTuple):
    text: str  # the markdown without its solutions
    removed: int  # how many solutions were removed
    gated: bool  # inside a gated solution at the end of the text
    ends_with_solution: bool  # the text's last non-blank line belonged to a solution


def strip_solutions(text: str, gated: bool = False) -> Stripped:
    """Remove the ``{solution}`` fences of one markdown text.

    ``gated`` says whether the text starts inside a gated solution (a ``{solution-start}`` of an
    earlier cell not yet closed by its ``{solution-end}``); the result's ``gated`` is the state
    at the end of the text. The parser follows MyST's fences: a fence
    closes on a line of the same character, at least as long, with nothing after it; inside a
    plain code fence nothing opens, inside a directive fence other fences nest. Text outside
    the solutions is kept as it is.
    """
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    stack: list[tuple[str, int, bool]] = []  # (char, length, literal) of each open fence
    drop_depth: int | None = None  # dropping until the fence at this depth closes
    removed = 0
    changed = gated
    last_dropped = gated  # whether the last non-blank line was dropped
    for line in lines:
        match = _FENCE.match(line.rstrip("\r\n"))
        closed, name = False, None
        if match:
            char, length = match.group("marker")[0], len(match.group("marker"))
            info = match.group("info")
            if stack and char == stack[-1][0] and length >= stack[-1][1] and not info.strip():
                stack.pop()
                closed = True
            elif not (stack and stack[-1][2]):  # nothing opens inside a literal code block
                name = _directive(info)
                stack.append((char, length, name is None))
        blank = not line.strip()
        if drop_depth is not None:  # inside a solution fence: drop up to its closer
            if closed and len(stack) < drop_depth:
                drop_depth = None
            last_dropped = last_dropped or not blank
            continue
        if name in _SOLUTION_DIRECTIVES:
            changed = True
            if name == "solution":
                removed += 1
            elif name == "solution-start":
                removed += 1
                gated = True
            else:  # solution-end
                gated = False
            drop_depth = len(stack)
            last_dropped = True
            continue
        if not blank:
            last_dropped = gated
        if not gated:
            out.append(line)
    if not changed:
        return Stripped(text, 0, gated, False)
    result = re.sub(r"\n{3,}", "\n\n", "".join(out)).strip("\n")
    if result and text.endswith("\n"):
        result += "\n"
    return Stripped(result, removed, gated, last_dropped)


def make_student_notebook(nb: dict) -> tuple[dict, Report]:
    """The student version of one notebook (a JSON dict, nbformat 4); the input is unchanged."""
    nb = copy.deepcopy(nb)
    report = Report()
    cells = []
    gated = False  # inside a {solution-start} … {solution-end} span, across cells
    # Right after an exercise cell or a removed solution, until the next visible cell: hidden
    # cells there check the exercise's answer, which the student has not written yet.
    after_answer = False
    for cell in nb.get("cells", []):
        kind, tags = cell.get("cell_type"), _tags(cell)
        if kind == "markdown" and SOLUTION_TAG in tags:  # a reader notebook's folded solution
            report.solutions_removed += 1
            report.cells_removed += 1
            after_answer = True
            continue
        if kind == "markdown":
            text, n, gated, ends_with_solution = strip_solutions(_source(cell), gated)
            report.solutions_removed += n
            after_answer = ends_with_solution or (after_answer and not text.strip())
            if not text.strip():
                report.cells_removed += 1
                continue
            cell["source"] = text
            cells.append(cell)
            continue
        if gated or (kind == "code" and SOLUTION_TAG in tags):
            report.cells_removed += 1
            continue
        if kind == "code":
            if after_answer and HIDDEN_TAG in tags:
                report.cells_removed += 1  # the hidden check of the answer just above
                continue
            after_answer = False
            cell["outputs"] = []
            cell["execution_count"] = None
            if EXERCISE_TAG in tags:
                cell["source"] = STUB
                report.exercises_blanked += 1
                after_answer = True
        cells.append(cell)
    if gated:
        report.notes.append("a {solution-start} has no {solution-end}: the rest was dropped")
    nb["cells"] = cells
    meta = nb.setdefault("metadata", {})
    meta.pop("jupytext", None)  # not paired with a .md in the student's folder
    meta["dctutor"] = {"student": True}
    return nb, report


def chapter_sources(book_dir: Path) -> list[Path]:
    """One path per chapter, in order: ``NN_name.ipynb``, or ``NN_name.md`` with no notebook."""
    book_dir = Path(book_dir)
    chapters: dict[str, Path] = {}
    for path in sorted(book_dir.glob(CHAPTER_GLOB + ".md")):
        chapters[path.stem] = path
    for path in sorted(book_dir.glob(CHAPTER_GLOB + ".ipynb")):
        chapters[path.stem] = path  # the paired notebook wins
    return [chapters[k] for k in sorted(chapters)]


def read_notebook(path: Path) -> dict:
    """A chapter as an nbformat-4 dict, from its ``.ipynb`` or (via Jupytext) its ``.md``."""
    path = Path(path)
    if path.suffix == ".ipynb":
        return json.loads(path.read_text(encoding="utf-8"))
    try:
        import jupytext
    except ImportError as err:  # pragma: no cover - jupytext comes with the book/test extras
        raise RuntimeError(f"{path} has no paired .ipynb and converting it needs jupytext "
                           "(pip install jupytext)") from err
    return json.loads(jupytext.writes(jupytext.read(path, fmt="md:myst"), fmt="ipynb"))


def write_notebook(nb: dict, path: Path) -> None:
    for cell in nb.get("cells", []):  # nbformat's on-disk form: sources as lists of lines
        if isinstance(cell.get("source"), str):
            cell["source"] = cell["source"].splitlines(keepends=True)
    Path(path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def write_student_notebooks(out_dir, book_dir="notebooks") -> list[tuple[Path, Path, Report]]:
    """Write the student version of every chapter of ``book_dir`` (by default the reader
    notebooks) into ``out_dir``.

    Returns ``(source, written, report)`` per chapter. Raises ``ValueError`` when ``book_dir``
    has no chapters, or when ``out_dir`` is ``book_dir`` itself (that would overwrite them).
    """
    book_dir, out_dir = Path(book_dir), Path(out_dir)
    sources = chapter_sources(book_dir)
    if not sources:
        raise ValueError(f"no chapters (NN_name.ipynb or NN_name.md) in {book_dir.resolve()}; "
                         "run this from the repository root or pass --from")
    if out_dir.resolve() == book_dir.resolve():
        raise ValueError(f"OUT_DIR is the source folder {book_dir}: choose another folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sources:
        nb, report = make_student_notebook(read_notebook(source))
        target = out_dir / (source.stem + ".ipynb")
        write_notebook(nb, target)
        written.append((source, target, report))
    return written
