"""Checks on the chapter sources that the CI book build cannot make.

CI builds the book without executing it (nbval has already run every notebook), and that build
silences myst-nb's glue warnings, because nothing was glued. So a ``{glue:}`` role that names a
value no cell glues, or asks for a format myst-nb rejects, would only surface in an executing
build (the README's book command, the published site). These tests catch both from the sources.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.md"))

ROLE = re.compile(r"\{glue(?::(any|text|md|figure|math))?\}`([^`]+)`")
DIRECTIVE = re.compile(r"^[`:]{3,}\{glue(?::\w+)?\}\s+(\S+)", re.M)
GLUED = re.compile(r"""\bglue\(\s*(f?)(["'])(.+?)\2""")
MD_FORMATS = {"commonmark", "gfm", "myst"}


def glued_names(text: str) -> tuple[set[str], list[re.Pattern]]:
    """Names glued by ``glue("name", ...)``; f-string names become patterns."""
    names, patterns = set(), []
    for is_f, _, name in GLUED.findall(text):
        if is_f:
            parts = re.split(r"\{[^}]*\}", name)
            patterns.append(re.compile(".+".join(re.escape(p) for p in parts) + r"\Z"))
        else:
            names.add(name)
    return names, patterns


def roles(text: str) -> list[tuple[str, str, str]]:
    """(kind, name, format) of every glue role and directive in ``text``."""
    out = []
    for kind, body in ROLE.findall(text):
        name, _, fmt = body.partition(":")
        out.append((kind or "any", name, fmt))
    out += [("directive", name, "") for name in DIRECTIVE.findall(text)]
    return out


def test_there_are_chapters():
    assert len(CHAPTERS) >= 5


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_every_glue_role_names_a_glued_value(source):
    text = source.read_text()
    names, patterns = glued_names(text)
    missing = [name for _, name, _ in roles(text)
               if name not in names and not any(p.match(name) for p in patterns)]
    assert not missing, f"{source.name}: glue roles with no glue(...) call: {missing}"


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_glue_formats_are_valid(source):
    bad = []
    for kind, name, fmt in roles(source.read_text()):
        if not fmt:
            continue
        if kind == "md":
            if fmt not in MD_FORMATS:
                bad.append(f"{{glue:md}}`{name}:{fmt}` (md takes one of {sorted(MD_FORMATS)})")
        elif kind in ("text", "any"):
            try:
                format(0.5, fmt)
            except ValueError:
                try:
                    format(1, fmt)
                except ValueError:
                    bad.append(f"{{glue:{kind}}}`{name}:{fmt}`")
    assert not bad, f"{source.name}: invalid glue formats: {bad}"


def test_parser_sees_roles_and_names():
    text = ('x {glue:text}`acc:.3f` y {glue:md}`verdict` z {glue}`plain`\n'
            'glue("acc", 1)\nglue(f"iic-{key}", 2)\n')
    assert roles(text) == [("text", "acc", ".3f"), ("md", "verdict", ""), ("any", "plain", "")]
    names, patterns = glued_names(text)
    assert names == {"acc"} and patterns[0].match("iic-acc") and not patterns[0].match("km-acc")


@pytest.mark.parametrize("value", [np.float64(0.25), np.float32(0.25), np.int64(3),
                                   torch.tensor(0.25), torch.tensor(3)])
def test_glue_stores_plain_python_numbers(value, monkeypatch):
    """NumPy 2 writes np.float64(0.25) as 'np.float64(0.25)', which {glue:text}`x:.3f` cannot
    format; the shim must hand myst-nb a Python number."""
    pytest.importorskip("myst_nb")
    import myst_nb

    from dctutor import book

    seen = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, v, display=True: seen.update({name: v}))
    book.glue("x", value, display=False)
    assert type(seen["x"]) in (float, int)
    assert format(seen["x"], ".3f") in ("0.250", "3.000")


def test_glue_refuses_a_figure_with_text_under_10_pt():
    """A figure wider than the text column is shrunk on the page, and its text with it."""
    import matplotlib.pyplot as plt

    from dctutor import book, plots

    plots.set_style()
    fine, ax = plt.subplots(figsize=(plots.PAGE_WIDTH, 3))
    ax.set_title("legible")
    book.glue("fine-figure", fine, display=False)
    wide, ax = plt.subplots(figsize=(2 * plots.PAGE_WIDTH, 3))
    ax.set_title("shrunk")
    with pytest.raises(ValueError, match="wide-figure.*pt on the page"):
        book.glue("wide-figure", wide, display=False)
    plt.close("all")


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_no_glue_role_inside_inline_code(source):
    """```{glue:text}`x``` renders the role's source as text: glue a Markdown value instead."""
    bad = re.findall(r"`\{glue[^}]*\}`[^`]+``", source.read_text())
    assert not bad, f"{source.name}: glue roles wrapped in backticks: {bad}"


READER_FACING = sorted(BOOK.glob("*.md")) + [BOOK.parent / "README.md"]


@pytest.mark.parametrize("source", READER_FACING, ids=lambda p: p.stem)
def test_no_reference_to_internal_notes(source):
    """Readers have no sources.md: the write-ups are cited from references.bib instead."""
    assert "sources.md" not in source.read_text(), f"{source.name} mentions sources.md"


def test_every_cited_key_is_in_the_bibliography():
    keys = set(re.findall(r"^@\w+\{([^,]+),", (BOOK / "references.bib").read_text(), re.M))
    cited = {k.strip() for src in BOOK.glob("*.md")
             for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", src.read_text())
             for k in group.split(",")}
    assert cited - keys == set(), f"cited but not in references.bib: {sorted(cited - keys)}"


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_states_learning_objectives(source):
    text = source.read_text()
    # a chapter's first page says "After this chapter", its further pages "After this page"
    assert re.search(r":::\{admonition\} After this (chapter|page) you can", text), (
        f"{source.name}: no objectives")


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_no_doubled_exercise_word(source):
    """sphinx-exercise renders {ref} to an exercise as "Exercise N": "exercise {ref}`x`" doubles it."""
    bad = re.findall(r"[Ee]xercises? \{ref\}`[^`]+`", source.read_text())
    assert not bad, f"{source.name}: {bad}"


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_title_leaves_its_number_to_sphinx(source):
    """Chapters 1-7 are the numbered part of _toc.yml: Sphinx puts "3. " before the title (and
    numbers equations, exercises and figures 3.1, 3.2, ...); a hand-written "3. " would double it.
    The reader notebooks add the number themselves (tests/test_reader.py)."""
    title = re.search(r"^# (.+)$", source.read_text(), re.M).group(1)
    assert not re.match(r"\d+\.\s", title), f"{source.name}: title {title!r} numbers itself"


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_no_doubled_number_words(source):
    """{eq} renders "(3.1)", {numref}/{ref}/{prf:ref} to a numbered thing "Figure 3.1",
    "Proposition 3.1": a word in front of the role would double it."""
    bad = re.findall(r"\b(?:[Ee]quations?|[Ff]ig(?:ure|\.)s?|[Tt]ables?|[Pp]roposition)"
                     r" \{(?:numref|ref|prf:ref)\}`[^`]+`", source.read_text())
    assert not bad, f"{source.name}: {bad}"
