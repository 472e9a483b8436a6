"""The reader notebooks (``notebooks/``, :mod:`dctutor.reader`), as a reader would see them.

* They are in sync with ``book/*.md`` (and with the code the chapters include).
* The converter turns each MyST construct into plain Jupyter Markdown (a synthetic chapter).
* Their Markdown holds no MyST; their code cells are laid out for Colab: the profile form right
  after the install cell, every hidden cell folded as a form with a title.
* Rendered by plain ``nbconvert`` (no MyST anywhere) and opened in headless Chromium with no
  network: no MyST markup in the page, every equation typeset (MathJax 3 served locally, set up
  as JupyterLab sets it up), no broken image. ``DCTUTOR_READER_EXECUTED=DIR`` also checks the
  executed notebooks in ``DIR`` (their figures), and ``DCTUTOR_READER_SCREENSHOTS=DIR`` saves a
  full-page PNG of each rendered notebook.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from dctutor import book, reader

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOURCES = reader.chapters(REPO / "book")
MATHJAX = REPO / "_vendor" / "mathjax" / "tex-chtml-full.js"

# What MyST looks like when nothing renders it
RAW_MYST = [r"\{glue", r":::", r"\{eq\}", r"\{cite", r"\{exercise\}", r"\{solution\}",
            r"^\([\w-]+\)=\s*$", r"\{ref\}", r"\{prf:", r"\{admonition\}", r"\{literalinclude\}",
            r"```\{", r"\{numref\}", r"\{doc\}", r"\{math\}", r"\[\^\w+\]"]


def _src(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def load(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


# -- in sync ----------------------------------------------------------------------------------
def test_every_chapter_has_a_reader_notebook():
    assert [p.stem for p in NOTEBOOKS] == [p.stem for p in SOURCES]


@pytest.fixture(scope="module")
def book_index():
    return reader.index_book(REPO), reader.Bibliography(REPO / "book" / "references.bib")


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_reader_notebook_in_sync(source, book_index):
    index, bib = book_index
    expected = reader._dumps(reader.reader_notebook(source, index, bib, root=REPO))
    target = REPO / "notebooks" / f"{source.stem}.ipynb"
    assert target.is_file() and target.read_text(encoding="utf-8") == expected, (
        f"{target.name} is out of date: run python -m dctutor notebooks")


# -- the converter on a synthetic chapter -----------------------------------------------------
SYNTHETIC = '''---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A chapter

Intro citing {cite}`xie2016` and {cite:t}`baldi1989,hinton2006`.

:::{admonition} Run time and requirements
:class: note

| profile | run time of this page | needs |
| --- | --- | --- |
| `quick` (CPU) | about 1 min | nothing |
| `full` (GPU) | about 2 h | a GPU |

In Colab this retrains something first.
:::

```{code-cell} ipython3
:tags: [hide-output]

try:
    import dctutor
except ImportError:
    %pip install dctutor
    import dctutor
```

```{code-cell} ipython3
from dctutor.book import glue
glue("acc", 0.51234, display=False)
```

(sec-label)=
## A section

Accuracy {glue:text}`acc:.2f` (and in parentheses {glue:text}`acc:.1f`). See {eq}`eq-syn`,
{ref}`sec-label` and {ref}`syn-ex`.[^n]

[^n]: A footnote
    on two lines.

$$
a = b
$$ (eq-syn)

% a comment

```{code-cell} ipython3
:tags: [remove-cell]

# the accuracy is a probability
assert 0 <= 0.5 <= 1
```

## Exercises

:::{exercise}
:label: syn-ex

Do it with $x$.
:::

::::{solution} syn-ex
:class: dropdown

The answer, with a note:

:::{note}
Nested.
:::
::::

```{literalinclude} ../dctutor/book.py
:pyobject: show_glued
```
'''


@pytest.fixture
def synthetic(tmp_path):
    root = tmp_path
    (root / "book").mkdir()
    (root / "book" / "references.bib").write_text((REPO / "book" / "references.bib").read_text())
    (root / "book" / "09_synthetic.md").write_text(SYNTHETIC)
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/09_synthetic.md\n")
    (root / "dctutor").mkdir()
    (root / "dctutor" / "book.py").write_text((REPO / "dctutor" / "book.py").read_text())
    return reader.reader_notebook(root / "book" / "09_synthetic.md", root=root)


def test_synthetic_chapter(synthetic):
    cells = synthetic["cells"]
    markdown = "\n".join(_src(c) for c in cells if c["cell_type"] == "markdown")
    for pattern in RAW_MYST:
        assert not re.search(pattern, markdown, re.M), pattern
    assert "[Xie et al., 2016]" in markdown
    assert "Baldi and Hornik [1989], Hinton and Salakhutdinov [2006]" in markdown
    assert "> **Run time and requirements**" in markdown
    assert "`acc` (printed above)" in markdown and "(and in parentheses `acc`)" in markdown
    assert "See (1),\nA section and Exercise 1.<sup>1</sup>" in markdown
    assert "> <sup>1</sup> A footnote\n> on two lines." in markdown
    assert "$$\na = b\n\\tag{1}\n$$" in markdown
    assert "### Exercise 1\n\nDo it with $x$." in markdown
    assert "## References" in markdown and "**Xie et al., 2016.**" in markdown
    assert "def show_glued(" in markdown and "```python" in markdown
    [solution] = [c for c in cells if c["metadata"].get("tags") == ["solution"]]
    assert _src(solution).startswith("<details>\n<summary><b>Solution to Exercise 1</b>")
    assert "> **Note**\n>\n> Nested." in _src(solution)
    code = [c for c in cells if c["cell_type"] == "code"]
    assert "import dctutor" in _src(code[0]) and code[1]["metadata"]["tags"] == ["profile-form"]
    form = _src(code[1])
    assert 'PROFILE = "quick"  #@param ["quick", "laptop", "full"]' in form
    assert "about 2 h" in form and "In Colab this retrains something first." in form
    assert _src(code[2]).rstrip().endswith("dctutor.book.show_glued('acc:.2f')")
    hidden = code[3]
    assert hidden["metadata"]["cellView"] == "form"
    assert _src(hidden).startswith("#@title Check: the accuracy is a probability\n")


NUMBERED_TOC = """format: jb-book
root: book/00_intro.md
parts:
  - caption: Front
    chapters:
      - file: book/notation.md
  - caption: Chapters
    numbered: 1
    chapters:
      - file: book/01_first.md
      - file: book/09_synthetic.md
  - caption: Back
    chapters:
      - file: book/references.md
"""


def test_synthetic_chapter_numbered_as_on_the_site(tmp_path):
    """In a numbered part, a page is chapter N (its place in the part, as Sphinx counts) and its
    equations, exercises and title carry N: (2.1), Exercise 2.1, "# 2. A chapter"."""
    root = tmp_path
    (root / "book").mkdir()
    (root / "book" / "references.bib").write_text((REPO / "book" / "references.bib").read_text())
    (root / "_toc.yml").write_text(NUMBERED_TOC)
    (root / "book" / "00_intro.md").write_text("# Intro\n\n$$\nx\n$$ (eq-intro)\n")
    (root / "book" / "notation.md").write_text("# Notation\n")
    (root / "book" / "references.md").write_text("# References\n")
    (root / "book" / "01_first.md").write_text(
        "# First\n\n$$\nc = d\n$$ (eq-first)\n\n:::{exercise}\n:label: first-ex\n\nA.\n:::\n")
    figures = ("\n```{code-cell} ipython3\nglue(\"fig-a\", 1, display=False)\n```\n\n"
               "```{glue:figure} fig-a\n:name: syn-fig\n\nThe caption, with $x$.\n```\n\n"
               ":::{table} Results\n:name: syn-table\n\n"
               "| a | b |\n| --- | --- |\n| 1 | 2 |\n:::\n\n"
               "See {numref}`syn-fig`, {numref}`syn-table` and {numref}`Fig. %s <syn-fig>`.\n")
    (root / "book" / "09_synthetic.md").write_text(SYNTHETIC.replace("## Exercises", figures
                                                                     + "\n## Exercises"))
    (root / "dctutor").mkdir()
    (root / "dctutor" / "book.py").write_text((REPO / "dctutor" / "book.py").read_text())
    assert reader.toc_numbers(root) == {
        "book/00_intro.md": None, "book/notation.md": None, "book/01_first.md": 1,
        "book/09_synthetic.md": 2, "book/references.md": None}
    index = reader.index_book(root)
    assert index.equations == {"eq-intro": "1", "eq-first": "1.1", "eq-syn": "2.1"}
    assert index.exercises == {"first-ex": "1.1", "syn-ex": "2.1"}
    nb = reader.reader_notebook(root / "book" / "09_synthetic.md", root=root)
    markdown = "\n".join(_src(c) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert re.search(r"^# 2\. A chapter$", markdown, re.M)
    assert "See (2.1),\nA section and Exercise 2.1." in markdown
    assert "$$\na = b\n\\tag{2.1}\n$$" in markdown
    assert "### Exercise 2.1\n\nDo it with $x$." in markdown
    assert "<summary><b>Solution to Exercise 2.1</b>" in markdown
    assert re.search(r"^\*\*Figure 2\.1\*\* \(the figure `fig-a`, printed above\): "
                     r"The caption, with \$x\$\.$", markdown, re.M)
    assert "**Table 2.1: Results**" in markdown
    assert "See Figure 2.1, Table 2.1 and Fig. 2.1." in markdown


def test_a_chapters_further_page_goes_on_counting(tmp_path):
    """A page nested under a chapter (``sections:``) shows no number in its title, as on the
    site (``numbered: 1``), and goes on counting the chapter's equations and exercises: Sphinx
    walks it after the chapter's own page with the chapter's number."""
    root = tmp_path
    (root / "book").mkdir()
    (root / "book" / "references.bib").write_text("")
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/00_intro.md\nparts:\n  - caption: Chapters\n"
        "    numbered: 1\n    chapters:\n      - file: book/01_first.md\n"
        "        sections:\n          - file: book/01_more.md\n"
        "      - file: book/02_next.md\n")
    (root / "book" / "00_intro.md").write_text("# Intro\n")
    (root / "book" / "01_first.md").write_text(
        "# First\n\n$$\nc = d\n$$ (eq-first)\n\n:::{exercise}\n:label: first-ex\n\nA.\n:::\n")
    (root / "book" / "01_more.md").write_text(
        SYNTHETIC.split("# A chapter")[0] + "# More\n\n"
        "```{code-cell} ipython3\ntry:\n    import dctutor\nexcept ImportError:\n    pass\n```\n\n"
        "See {eq}`eq-first`.\n\n$$\ne = f\n$$ (eq-more)\n\n"
        ":::{exercise}\n:label: more-ex\n\nB.\n:::\n")
    (root / "book" / "02_next.md").write_text("# Next\n\n$$\ng = h\n$$ (eq-next)\n")
    assert reader.toc_numbers(root) == {"book/00_intro.md": None, "book/01_first.md": 1,
                                        "book/01_more.md": 1, "book/02_next.md": 2}
    assert reader.toc_parents(root) == {"book/01_more.md": "book/01_first.md"}
    assert reader.reading_order(["02_next", "01_more", "01_first"], root) == [
        "01_first", "01_more", "02_next"]
    index = reader.index_book(root)
    assert index.equations == {"eq-first": "1.1", "eq-more": "1.2", "eq-next": "2.1"}
    assert index.exercises == {"first-ex": "1.1", "more-ex": "1.2"}
    nb = reader.reader_notebook(root / "book" / "01_more.md", index, root=root)
    markdown = "\n".join(_src(c) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert re.search(r"^# More$", markdown, re.M), markdown
    assert "See (1.1)." in markdown and "\\tag{1.2}" in markdown
    assert re.search(r"^#+ Exercise 1\.2$", markdown, re.M)


def test_book_is_numbered_by_chapter():
    """The site numbers chapters 1-7 from _toc.yml's numbered part; the file names say the same
    number, and the reader notebooks show it in the title and in every number within."""
    numbers, parents = reader.toc_numbers(REPO), reader.toc_parents(REPO)
    for source in SOURCES:
        doc = source.relative_to(REPO).as_posix()
        n = int(source.stem[:2])
        assert numbers[doc] == (n or None), f"{doc} is chapter {numbers[doc]} on the site"
        markdown = _markdown(REPO / "notebooks" / f"{source.stem}.ipynb")
        if not n:
            continue
        if doc in parents:  # a chapter's further page: its title is not numbered on the site
            assert parents[doc].startswith(f"book/{source.stem[:3]}"), (doc, parents[doc])
            assert not re.search(r"^# \d+\. ", markdown, re.M), f"{source.stem}: numbered title"
        else:
            assert re.search(rf"^# {n}\. \S", markdown, re.M), f"{source.stem}: no '# {n}. ' title"
        for found in re.findall(r"\\tag\{([^}]*)\}|^#+ Exercise (\S+)", markdown, re.M):
            number = found[0] or found[1]
            assert re.fullmatch(rf"{n}\.\d+", number), f"{source.stem}: number {number}"


def test_chapter_3_numbers():
    [ch3] = [p for p in NOTEBOOKS if p.stem == "03_dec_derivation"]
    markdown = _markdown(ch3)
    assert markdown.count("# 3. DEC: the derivation\n") == 1
    assert re.findall(r"\\tag\{([^}]*)\}", markdown)[:2] == ["3.1", "3.2"]
    exercises = re.findall(r"^#+ (Exercise \S+)", markdown, re.M)
    assert exercises[:2] == ["Exercise 3.1", "Exercise 3.2"]
    assert "**Proposition 3.1" in markdown


def test_unknown_construct_fails_loudly(tmp_path):
    root = tmp_path
    (root / "book").mkdir()
    (root / "book" / "references.bib").write_text("")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/09_x.md\n")
    (root / "book" / "09_x.md").write_text(SYNTHETIC.split("# A chapter")[0] + "# X\n\n"
                                           "```{code-cell} ipython3\ntry:\n    import dctutor\n"
                                           "except ImportError:\n    pass\n```\n\n"
                                           ":::{mystery}\nhello\n:::\n")
    with pytest.raises(reader.ConversionError, match="mystery"):
        reader.reader_notebook(root / "book" / "09_x.md", root=root)


# -- what the committed notebooks look like ---------------------------------------------------
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_reader_notebook_layout(path):
    nb = load(path)
    cells = nb["cells"]
    markdown = "\n".join(_src(c) for c in cells if c["cell_type"] == "markdown")
    for pattern in RAW_MYST:
        found = re.findall(f".{{0,40}}{pattern}.{{0,40}}", markdown, re.M)
        assert not found, f"raw MyST ({pattern}) in {path.name}: {found[:3]}"
    code = [c for c in cells if c["cell_type"] == "code"]
    assert "except ImportError" in _src(code[0]), "the first code cell is the guarded install"
    form = code[1]
    assert form["metadata"].get("cellView") == "form"
    assert 'PROFILE = "quick"  #@param ["quick", "laptop", "full"]' in _src(form)
    for cell in code:
        tags = cell["metadata"].get("tags", [])
        if "remove-cell" in tags or "hide-input" in tags:
            assert cell["metadata"].get("cellView") == "form", _src(cell)[:80]
            assert _src(cell).startswith("#@title "), _src(cell)[:80]
        assert not cell["outputs"] and cell["execution_count"] is None
    # every glued value the prose names is shown by a cell above it
    shown = set()
    for cell in cells:
        if cell["cell_type"] == "code":
            for call in re.findall(r"show_glued\((.*)\)", _src(cell)):
                shown |= {s.partition(":")[0] for s in re.findall(r"'([^']+)'", call)}
            shown |= set(re.findall(r"""\bglue\(["']([\w-]+)["']""", _src(cell)))  # figures
        else:
            for name in re.findall(r"`([\w-]+)` \(printed above\)|`([\w-]+)`, printed above",
                                   _src(cell)):
                assert (name[0] or name[1]) in shown, f"{name} is said to be printed above"


def test_chapter_4_says_colab_retrains_chapter_2():
    """The first page of chapter 4 starts from chapter 2's network: in Colab it is retrained, and
    the form says so. The failures page trains its own small networks, and the Fashion-MNIST page
    its own stack (its MNIST numbers come from the committed benchmark)."""
    pages = {p.stem: p for p in NOTEBOOKS if p.stem.startswith("04_")}
    assert set(pages) == {"04_dec_in_practice", "04_dec_failures", "04_dec_fashion"}, set(pages)
    form = next(_src(c) for c in load(pages["04_dec_in_practice"])["cells"]
                if "profile-form" in c["metadata"].get("tags", []))
    assert "Colab" in form and "chapter 2" in form and "min" in form, form


def test_chapter_2_second_page_says_colab_retrains_the_stack():
    """Does pretraining help? loads the stack the chapter's first page cached; in Colab there is
    no cache, so it trains the stack first, and the form says so."""
    [page] = [p for p in NOTEBOOKS if p.stem == "02_stacked_vs_scratch"]
    form = next(_src(c) for c in load(page)["cells"]
                if "profile-form" in c["metadata"].get("tags", []))
    assert "Colab" in form and "first page" in form, form


def test_chapters_1_to_3_have_two_pages():
    """Chapters 1-3 are split like 4 and 5: each further page follows its chapter's first page
    in reading order."""
    stems = [p.stem for p in NOTEBOOKS]
    order = reader.reading_order(stems, REPO)
    for first, more in [("01_pca_vs_autoencoders", "01_nonlinear_autoencoders"),
                        ("02_stacked_denoising_autoencoders", "02_stacked_vs_scratch"),
                        ("03_dec_derivation", "03_dec_gradient_check")]:
        assert order.index(more) == order.index(first) + 1, (first, more)


# -- the profile form and the glued numbers ---------------------------------------------------
def test_choose_profile(clean_env, capsys, monkeypatch):
    monkeypatch.setattr(book, "_PROFILE_AT_START", None)
    monkeypatch.setattr(book, "_DEVICE_AT_START", None)
    for key in ("DCTUTOR_PROFILE", "DCTUTOR_DEVICE"):  # restored after the test
        clean_env.setenv(key, "")
    times = {"quick": "quick (CPU): 1 min", "full": "full (GPU): 2 h", "colab": "retrains"}
    assert book.choose_profile("quick", "cpu", times) == "quick"
    out = capsys.readouterr().out
    assert os.environ["DCTUTOR_PROFILE"] == "quick" and "1 min" in out and "2 h" not in out
    assert book.choose_profile("full", "cpu", times) == "full"
    out = capsys.readouterr().out
    assert "2 h" in out and "long" in out
    monkeypatch.setattr(book, "_PROFILE_AT_START", "full")  # set outside: it wins
    assert book.choose_profile("quick", "auto", times) == "full"
    assert "wins" in capsys.readouterr().out
    with pytest.raises(ValueError):
        book.choose_profile("laptop?", "auto", times)


def test_show_glued(capsys, monkeypatch):
    from IPython.display import Markdown

    monkeypatch.setattr(book, "GLUED", {})
    book.glue("acc", 0.51234, display=False)
    book.glue("verdict", Markdown("*better*"), display=False)
    book.show_glued("acc:.2f", "verdict")
    out = capsys.readouterr().out
    assert "acc = 0.51" in out and "verdict = *better*" in out
    with pytest.raises(KeyError):
        book.show_glued("nothing")


# -- rendered by nbconvert, opened in Chromium ------------------------------------------------
MATHJAX_CONFIG = """<script>
window.MathJax = {tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']],
                        displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']],
                        processEscapes: true, processEnvironments: true, tags: 'none'},
                  options: {ignoreHtmlClass: 'jp-CodeCell|jp-OutputArea'}};
</script>
"""

PAGE_SCRIPT = r"""
(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  const report = {};
  report.mathjax = window.MathJax && MathJax.version || null;
  const images = [...document.images];
  await Promise.all(images.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener("load", done); img.addEventListener("error", done);
    setTimeout(done, 20000); })));
  report.images = images.map(img => ({src: img.src.slice(0, 80), width: img.naturalWidth}));
  const md = [...document.querySelectorAll(".jp-MarkdownCell .jp-RenderedMarkdown")];
  // the text a reader sees: typeset math and code left out
  const text = md.map(el => {
    const copy = el.cloneNode(true);
    copy.querySelectorAll("mjx-container, code, pre").forEach(n => n.remove());
    return copy.textContent;
  }).join("\n");
  report.text = text;
  report.math = document.querySelectorAll(".jp-MarkdownCell mjx-container").length;
  report.mathErrors = [...document.querySelectorAll("mjx-merror")].map(e => e.textContent.slice(0, 80));
  report.details = document.querySelectorAll(".jp-MarkdownCell details").length;
  report.headings = [...document.querySelectorAll(".jp-MarkdownCell h3")].map(h => h.textContent);
  return JSON.stringify(report);
})()
"""


def render_html(nb_path, out_dir) -> Path:
    nbconvert = pytest.importorskip("nbconvert")
    # RequireJS (for widgets, which these notebooks do not use) comes from a CDN by default
    exporter = nbconvert.HTMLExporter(template_name="lab", mathjax_url=MATHJAX.as_uri(),
                                      require_js_url="data:text/javascript,")
    body, _ = exporter.from_filename(str(nb_path))
    # nbconvert configures MathJax 2; the MathJax served here is 3, set up as JupyterLab does
    body = body.replace(f'<script src="{MATHJAX.as_uri()}"', MATHJAX_CONFIG +
                        f'<script src="{MATHJAX.as_uri()}"', 1)
    target = Path(out_dir) / (Path(nb_path).stem + ".html")
    target.write_text(body, encoding="utf-8")
    return target


def _executed():
    folder = os.environ.get("DCTUTOR_READER_EXECUTED")
    return sorted(Path(folder).glob("*.ipynb")) if folder else []


@pytest.fixture(scope="module")
def chromium():
    from test_site import Chromium, find_chromium

    exe = find_chromium()
    if exe is None:
        pytest.skip("no Chromium (apt-get install chromium, or set DCTUTOR_CHROMIUM)")
    if not MATHJAX.is_file():
        pytest.skip(f"no MathJax at {MATHJAX}")
    browser = Chromium(exe)
    try:
        yield browser
    finally:
        browser.close()


@pytest.mark.parametrize("path", NOTEBOOKS + _executed(),
                         ids=lambda p: p.stem + ("-executed" if p.parent.name != "notebooks"
                                                 else ""))
def test_rendered_as_a_reader_sees_it(path, chromium, tmp_path):
    page = render_html(path, tmp_path)
    shots = os.environ.get("DCTUTOR_READER_SCREENSHOTS")
    shot = None
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        shot = Path(shots) / (page.stem + ("-executed" if path.parent.name != "notebooks"
                                            else "") + ".png")
    report, requests, failures, exceptions = chromium.inspect(page.as_uri(), PAGE_SCRIPT, shot)
    problems = []
    text = report["text"]
    for pattern in RAW_MYST + [r"\$\$", r"\\begin\{", r"\\tag\{"]:
        for found in re.findall(f".{{0,40}}{pattern}.{{0,40}}", text, re.M):
            problems.append(f"raw markup ({pattern}): {found!r}")
    for found in re.findall(r".{0,40}\|\s*:?-{3,}:?\s*\|.{0,40}", text):
        problems.append(f"a table shown as text: {found!r}")
    if re.search(r"\$[^$\s][^$]*\$", text):
        problems.append("untypeset inline math: "
                        + re.search(r".{0,30}\$[^$\s][^$]*\$.{0,30}", text).group(0))
    if "$" in _markdown(path) and not report["math"]:
        problems.append("no equation typeset (MathJax did not run)")
    problems += [f"MathJax error: {e}" for e in report["mathErrors"]]
    problems += [f"broken image {i['src']}" for i in report["images"] if not i["width"]]
    problems += [f"failed to load {u[:100]}: {e}" for u, e in failures]
    problems += [f"asked the network for {u[:100]}" for u in requests
                 if not u.startswith(("file:", "data:", "blob:", "about:"))]
    if re.search(r"^#{3,6} Exercise \d+", _markdown(path), re.M):
        assert any(re.match(r"Exercise \d+\.\d+", h) for h in report["headings"]), \
            report["headings"]
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems[:20])


def _markdown(path) -> str:
    return "\n".join(_src(c) for c in load(path)["cells"] if c["cell_type"] == "markdown")


def test_a_value_no_cell_glues_fails_loudly(tmp_path):
    root = tmp_path
    (root / "book").mkdir()
    (root / "book" / "references.bib").write_text((REPO / "book" / "references.bib").read_text())
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/09_x.md\n")
    (root / "dctutor").mkdir()
    (root / "dctutor" / "book.py").write_text((REPO / "dctutor" / "book.py").read_text())
    (root / "book" / "09_x.md").write_text(SYNTHETIC.replace("{glue:text}`acc:.1f`",
                                                             "{glue:text}`nowhere`"))
    with pytest.raises(reader.ConversionError, match="nowhere"):
        reader.reader_notebook(root / "book" / "09_x.md", root=root)
