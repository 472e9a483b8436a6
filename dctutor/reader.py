"""Reader notebooks: every chapter in plain Jupyter Markdown, generated from its MyST source.

``python -m dctutor notebooks`` writes ``notebooks/NN_name.ipynb`` for every ``book/NN_name.md``
(``--check`` only compares). These are the notebooks that Colab opens, that the site offers for
download, that nbval executes and that the student notebooks are made from. Jupyter and Colab do
not render MyST, so each MyST construct is turned into what they do render:

* admonitions and ``prf:`` blocks → quoted blocks with a bold title;
* the chapter's title → with its number before it (``# 3. Title``), as the site shows it; a
  chapter's further pages (``sections:`` in ``_toc.yml``, :func:`toc_parents`) keep their
  titles unnumbered, as on the site, and go on counting the chapter's numbers (5.4, 5.5, …);
* ``{exercise}`` → a numbered heading (*Exercise 3.1*, numbered within the chapter as on the
  site: :func:`toc_numbers`);
  each ``{solution}`` → its own Markdown cell, tagged ``solution``, folded in ``<details>``;
* ``$$ … $$ (label)`` → the equation with ``\\tag{3.1}``; ``{eq}`label``` → ``(3.1)``;
* ``{cite}``/``{cite:t}`` → author–year, with a reference list from ``book/references.bib`` at the
  end; ``{ref}``/``{prf:ref}`` → *Exercise 3.1*, *Proposition 3.1* or the section's title;
* ``(label)=`` lines and ``%`` comments are dropped; footnotes become superscripts and quoted notes;
* ``{literalinclude}`` → the included code, read from the package at generation time;
* ``{glue:…}`` roles → the value's name in code type, "(printed above)": the cell that glues the
  value also shows it, with the page's format (:func:`dctutor.book.show_glued`);
* hidden cells (``remove-cell``) and plot-only cells (``hide-input``) stay and run, folded as
  Colab forms (``#@title …``, ``cellView: form``) whose title says what they check or draw;
* after the install cell, a Colab form picks the profile (``quick`` by default) and the device,
  and prints what the chosen profile costs, from the chapter's run-time box.

The converter is markdown-it-py with the mdit-py-plugins that myst-parser composes its parser
from (same plugins, same options as the book's ``_config.yml``): each construct is found in
that syntax tree — never by a regular expression over the text — and the source lines around it
are kept as written, so the notebook's Markdown reads like the chapter's. Anything the converter
does not know raises :class:`ConversionError` rather than leaking MyST into a notebook.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHAPTER_GLOB = "[0-9][0-9]_*.md"
NOTEBOOKS = "notebooks"
REPOSITORY = "dctutor/dctutor"
BRANCH = "main"
SITE_URL = "https://dctutor.github.io/dctutor/"
COLAB_URL = f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/{NOTEBOOKS}/"

ADMONITIONS = {"admonition", "note", "tip", "warning", "important", "caution", "attention",
               "danger", "error", "hint", "seealso"}
QUOTED = {"margin", "sidebar", "epigraph", "topic", "aside"}
CODE_DIRECTIVES = {"code-block", "code", "sourcecode"}
GLUE_ROLES = {"glue", "glue:any", "glue:text", "glue:md"}


class ConversionError(ValueError):
    """A MyST construct the reader notebooks cannot express (or a reference to nothing)."""


def _parser():
    """The MyST parser as myst-parser builds it for this book (``_config.yml``'s extensions)."""
    from markdown_it import MarkdownIt
    from mdit_py_plugins.amsmath import amsmath_plugin
    from mdit_py_plugins.colon_fence import colon_fence_plugin
    from mdit_py_plugins.deflist import deflist_plugin
    from mdit_py_plugins.dollarmath import dollarmath_plugin
    from mdit_py_plugins.footnote import footnote_plugin
    from mdit_py_plugins.front_matter import front_matter_plugin
    from mdit_py_plugins.myst_blocks import myst_block_plugin
    from mdit_py_plugins.myst_role import myst_role_plugin
    from mdit_py_plugins.substitution import substitution_plugin

    return (MarkdownIt("commonmark").enable("table").use(front_matter_plugin)
            .use(myst_block_plugin).use(myst_role_plugin).use(footnote_plugin)
            .disable("footnote_inline").disable("footnote_tail")
            .use(dollarmath_plugin, allow_labels=True, allow_space=True, allow_digits=True,
                 double_inline=False)
            .use(colon_fence_plugin).use(amsmath_plugin).use(deflist_plugin)
            .use(substitution_plugin))


_MD = None


def md():
    global _MD
    if _MD is None:
        _MD = _parser()
    return _MD


# -- directives ---------------------------------------------------------------------------------
@dataclass
class Directive:
    name: str
    argument: str
    options: dict
    body: str


def is_directive(token) -> bool:
    return token.type in ("fence", "colon_fence") and token.info.strip().startswith("{")


def directive(token) -> Directive:
    info = token.info.strip()
    match = re.match(r"\{([^}]+)\}\s*(.*)$", info)
    if not match:
        raise ConversionError(f"not a directive: {info!r}")
    name, argument = match.group(1), match.group(2).strip()
    lines = token.content.splitlines()
    options = {}
    if lines and lines[0].strip() == "---":  # YAML options block
        import yaml

        end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
        if end is None:
            raise ConversionError(f"{{{name}}}: unclosed options block")
        options = yaml.safe_load("\n".join(lines[1:end])) or {}
        lines = lines[end + 1:]
    else:
        while lines and re.match(r"^:[\w-]+:", lines[0]):
            key, _, value = lines.pop(0)[1:].partition(":")
            options[key.strip()] = value.strip()
    return Directive(name, argument, options, "\n".join(lines).strip("\n"))


# -- the book's numbering -----------------------------------------------------------------------
@dataclass
class BookIndex:
    """Labels and numbers across the book, in ``_toc.yml`` order, numbered as Sphinx numbers
    them on the site: a page in a ``numbered`` part of ``_toc.yml`` is chapter N, and its
    equations, exercises and ``prf:`` blocks are N.1, N.2, ... (``numfig_secnum_depth: 1``);
    pages outside the numbered parts share one plain count (1, 2, ...), as Sphinx's are."""

    equations: dict = field(default_factory=dict)     # label -> number ("3.1")
    exercises: dict = field(default_factory=dict)     # label -> number
    exercise_order: dict = field(default_factory=dict)  # doc -> [numbers in order]
    proofs: dict = field(default_factory=dict)        # label -> (kind title, number)
    proof_order: dict = field(default_factory=dict)   # doc -> [(kind, number)] in order
    captioned: dict = field(default_factory=dict)     # label -> ("Figure"/"Table", number)
    captioned_order: dict = field(default_factory=dict)  # doc -> [numbers] in order
    sections: dict = field(default_factory=dict)      # label -> heading text
    documents: list = field(default_factory=list)     # doc paths relative to the repository
    chapter_numbers: dict = field(default_factory=dict)  # doc -> its chapter number (numbered)
    parents: dict = field(default_factory=dict)       # a chapter's further page -> the chapter's page


def toc_documents(root: Path) -> list[str]:
    """The book's pages in reading order, as repository-relative paths with their suffix."""
    return list(toc_numbers(root))


def toc_numbers(root: Path) -> dict[str, int | None]:
    """The book's pages in reading order -> their chapter number, ``None`` for an unnumbered
    page. As on the site (Sphinx, with jupyter-book's sphinx-multitoc-numbering): the top-level
    pages of every ``numbered`` part (or of the book, with ``defaults: numbered``) are numbered
    1, 2, ... in order, the count running on from one numbered part to the next; a nested
    page (``sections:``) has its chapter's number as the first level of its own."""
    return _toc_walk(root)[0]


def toc_parents(root: Path) -> dict[str, str]:
    """Every nested page (``sections:`` in ``_toc.yml``) -> the page it is nested under.

    A chapter of several pages: the site numbers only the chapter's own page ("5. IIC"); its
    further pages carry no number in their titles (``numbered: 1``) but go on counting the
    chapter's figures, equations and exercises (Sphinx walks them after the chapter's page)."""
    return _toc_walk(root)[1]


def _toc_walk(root: Path) -> tuple[dict[str, int | None], dict[str, str]]:
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    numbers: dict[str, int | None] = {}
    parents: dict[str, str] = {}
    last = 0

    def name(doc):
        return doc if Path(doc).suffix else doc + ".md"

    def walk(entry, numbered, top, chapter, parent):
        nonlocal last
        if not isinstance(entry, dict):
            return
        if "file" in entry:
            if numbered and top:
                last += 1
                chapter = last
            numbers[name(entry["file"])] = chapter if numbered else None
            if parent is not None:
                parents[name(entry["file"])] = parent
        for key in ("chapters", "sections"):
            for sub in entry.get(key, []) or []:
                walk(sub, numbered, "file" not in entry and top, chapter,
                     name(entry["file"]) if "file" in entry else parent)

    default = bool((toc.get("defaults") or {}).get("numbered"))
    numbers[name(toc["root"])] = None
    for part in toc.get("parts") or [toc]:
        numbered = bool(part.get("numbered", default)) if part is not toc else default
        for sub in part.get("chapters", []) or []:
            walk(sub, numbered, True, None, None)
    return numbers, parents


def _markdown_of(path: Path) -> str:
    """A page's Markdown, code cells blanked (they hold no MyST), front matter dropped."""
    text = path.read_text(encoding="utf-8")
    out, in_code = [], False
    for line in text.splitlines():
        if not in_code and line.startswith("```{code-cell}"):
            in_code = True
            out.append("")
            continue
        if in_code:
            if line.startswith("```") and not line.strip("`"):
                in_code = False
            out.append("")
            continue
        out.append(line)
    return "\n".join(out)


def index_book(root: Path = REPO) -> BookIndex:
    index = BookIndex()
    counts: dict = {}  # (kind, chapter) -> last number: Sphinx's counters, per chapter

    index.parents = toc_parents(root)
    for doc, chapter in toc_numbers(root).items():
        path = root / doc
        if path.suffix != ".md" or not path.is_file():
            continue
        index.documents.append(doc)
        index.exercise_order[doc] = []
        index.proof_order[doc] = []
        index.captioned_order[doc] = []
        if chapter is not None:
            index.chapter_numbers[doc] = chapter

        def next_number(kind, chapter=chapter):
            counts[kind, chapter] = counts.get((kind, chapter), 0) + 1
            n = counts[kind, chapter]
            return f"{chapter}.{n}" if chapter is not None else str(n)

        def walk(text):
            tokens = md().parse(text)
            for i, tok in enumerate(tokens):
                if tok.type == "math_block_label":
                    index.equations[tok.info] = next_number("equation")
                elif tok.type == "myst_target":
                    nxt = next((t for t in tokens[i + 1:] if t.type != "myst_target"), None)
                    if nxt is not None and nxt.type == "heading_open":
                        heading = tokens[tokens.index(nxt) + 1]
                        index.sections[tok.content] = plain_inline(heading)
                    else:
                        index.sections.setdefault(tok.content, None)
                elif is_directive(tok):
                    d = directive(tok)
                    if d.name == "exercise":
                        number = next_number("exercise")
                        index.exercise_order[doc].append(number)
                        if "label" in d.options:
                            index.exercises[d.options["label"]] = number
                    elif d.name.startswith("prf:") and d.name != "prf:proof":
                        kind = d.name[4:]
                        number = next_number("prf:" + kind)
                        index.proof_order[doc].append((kind.capitalize(), number))
                        if "label" in d.options:
                            index.proofs[d.options["label"]] = (kind.capitalize(), number)
                    elif d.name == "math" and "label" in d.options:
                        index.equations[d.options["label"]] = next_number("equation")
                    elif captioned_kind(d):
                        # Sphinx numbers a figure with a caption, a table with a title
                        kind = captioned_kind(d)
                        number = next_number(kind)
                        index.captioned_order[doc].append(number)
                        if "name" in d.options:
                            index.captioned[d.options["name"]] = (kind.capitalize(), number)
                    if d.name not in ("literalinclude", *CODE_DIRECTIVES):
                        walk(d.body)

        walk(_markdown_of(path))
    return index


def captioned_kind(d: Directive) -> str | None:
    """``"figure"`` or ``"table"`` for a directive Sphinx numbers as one (a figure with a
    caption, a table with a title), else ``None``."""
    if d.name in ("figure", "glue:figure") and d.body.strip():
        return "figure"
    if d.name in ("table", "list-table") and d.argument:
        return "table"
    return None


def plain_inline(inline_token) -> str:
    """The text of an inline token, markup dropped (for section titles)."""
    parts = []
    for child in inline_token.children or []:
        if child.type in ("text", "code_inline", "text_special"):
            parts.append(child.content)
        elif child.type == "math_inline":
            parts.append(f"${child.content}$")
        elif child.type == "softbreak":
            parts.append(" ")
    return "".join(parts).strip()


# -- the bibliography ---------------------------------------------------------------------------
class Bibliography:
    """``book/references.bib`` cited as the site cites it (sphinxcontrib-bibtex, author_year)."""

    def __init__(self, path: Path):
        from pybtex.database import parse_file

        self.path = path
        self.data = parse_file(str(path))

    def _names(self, entry) -> str | None:
        persons = entry.persons.get("author") or entry.persons.get("editor")
        if not persons:
            return None
        last = [_latex_to_text(" ".join(p.prelast_names + p.last_names)) for p in persons]
        if len(last) == 1:
            return last[0]
        if len(last) == 2:
            return f"{last[0]} and {last[1]}"
        return f"{last[0]} et al."

    def parts(self, key: str) -> tuple[str, str]:
        if key not in self.data.entries:
            raise ConversionError(f"{{cite}}`{key}`: no such entry in {self.path.name}")
        entry = self.data.entries[key]
        who = self._names(entry) or _latex_to_text(entry.fields.get("title", key))
        return who, _latex_to_text(entry.fields.get("year", "n.d."))

    def cite(self, keys: list[str], textual: bool) -> str:
        if textual:
            return ", ".join(f"{who} [{year}]" for who, year in map(self.parts, keys))
        return "[" + "; ".join(f"{who}, {year}" for who, year in map(self.parts, keys)) + "]"

    def references(self, keys: list[str]) -> str:
        """A Markdown list of ``keys``, formatted by pybtex's ``alpha`` style (the site's)."""
        from pybtex.plugin import find_plugin

        style = find_plugin("pybtex.style.formatting", "alpha")()
        backend = find_plugin("pybtex.backends", "markdown")()
        entries = {e.key: e for e in style.format_entries(
            [self.data.entries[k] for k in keys])}
        lines = []
        for key in sorted(keys, key=lambda k: [s.casefold() for s in self.parts(k)]):
            who, year = self.parts(key)
            text = " ".join(entries[key].text.render(backend).split())
            text = re.sub(r"\\([_*\[\]()#+.!-])", r"\1", text)  # the markdown backend over-escapes
            lines.append(f"- **{who}, {year}{'' if year.endswith('.') else '.'}** {text}")
        return "\n".join(lines)


def _latex_to_text(text: str) -> str:
    from pybtex.richtext import Text  # noqa: F401  (pybtex is there: it parsed the file)
    from pybtex.markup import LaTeXParser

    return str(LaTeXParser(text).parse()).replace("--", "–")


# -- the converter ------------------------------------------------------------------------------
@dataclass
class Part:
    kind: str  # "markdown" or "solution"
    text: str


def _glued_names(code: str) -> tuple[list[str], list[re.Pattern]]:
    names, patterns = [], []
    for is_f, _, name in re.findall(r"""\bglue\(\s*(f?)(["'])(.+?)\2""", code):
        if is_f:
            pieces = re.split(r"\{[^}]*\}", name)
            patterns.append(re.compile(".+".join(re.escape(p) for p in pieces) + r"\Z"))
        else:
            names.append(name)
    return names, patterns


class Chapter:
    """One chapter's conversion: Markdown cells through :meth:`render`, code cells through
    :meth:`code_cell`, the whole notebook through :func:`reader_notebook`."""

    def __init__(self, path: Path, index: BookIndex, bib: Bibliography, root: Path = REPO):
        self.path, self.index, self.bib, self.root = path, index, bib, root
        self.doc = path.relative_to(root).as_posix()
        self.cited: list[str] = []
        self.exercises = list(index.exercise_order.get(self.doc, []))
        self.proofs = list(index.proof_order.get(self.doc, []))
        self.captioned = list(index.captioned_order.get(self.doc, []))
        self.heading_level = 1
        self.titled = False  # the chapter's number is put before its title (the first h1)
        self.footnotes: dict[str, int] = {}
        self.glue_formats: dict[str, str] = {}   # name -> format of its first use in the prose
        self.glued_before: set[str] = set()      # names shown by a cell above the current one
        self.marked = False  # the current paragraph already says "(printed above)"

    # -- inline ---------------------------------------------------------------------------------
    def role(self, name: str, content: str, after: str) -> str:
        if name in GLUE_ROLES:
            # the value's name; the paragraph's first one also says where its value is printed
            value = content.partition(":")[0].strip()
            unit = re.match(r"^ ?%", after)
            unit = unit.group(0) if unit else ""
            if self.marked:
                return f"`{value}`{unit}"
            self.marked = True
            where = "above" if value in self.glued_before else "below"
            if after[len(unit):].startswith(")"):
                return f"`{value}`{unit}, printed {where}"
            return f"`{value}`{unit} (printed {where})"
        if name == "eq":
            if content not in self.index.equations:
                raise ConversionError(f"{{eq}}`{content}`: no equation has this label")
            return f"({self.index.equations[content]})"
        if name in ("cite", "cite:p", "cite:ps", "cite:t", "cite:ts"):
            keys = [k.strip() for k in content.split(",") if k.strip()]
            for key in keys:
                if key not in self.cited:
                    self.cited.append(key)
            return self.bib.cite(keys, textual=name.startswith("cite:t"))
        if name in ("ref", "prf:ref", "numref"):
            text, label = None, content
            match = re.match(r"^(.*?)\s*<([^>]+)>$", content, re.S)
            if match:
                text, label = match.group(1), match.group(2)
            if text and name == "numref" and ("%s" in text or "{number}" in text):
                found = self.index.captioned.get(label) or self.index.proofs.get(label)
                if label in self.index.exercises:
                    found = ("Exercise", self.index.exercises[label])
                if found is None:
                    raise ConversionError(f"{{numref}}`{content}`: nothing numbered has this label")
                return text.replace("%s", found[1]).replace("{number}", found[1])
            if text:
                return text
            if label in self.index.exercises:
                return f"Exercise {self.index.exercises[label]}"
            if label in self.index.proofs:
                kind, n = self.index.proofs[label]
                return f"{kind} {n}"
            if label in self.index.captioned:
                kind, n = self.index.captioned[label]
                return f"{kind} {n}"
            if self.index.sections.get(label):
                return self.index.sections[label]
            raise ConversionError(f"{{{name}}}`{content}`: no exercise, proposition or section "
                                  "has this label")
        if name == "math":
            return f"${content}$"
        if name in ("sub", "sup"):
            return f"<{name}>{content}</{name}>"
        raise ConversionError(f"the role {{{name}}} has no plain-Markdown form in the reader "
                              "notebooks (dctutor/reader.py)")

    def link(self, href: str) -> str:
        if re.match(r"^[a-z]+:", href) or href.startswith("#"):
            return href
        target, _, anchor = href.partition("#")
        if target in self.index.sections or (not Path(target).suffix and not anchor
                                            and target in self.index.sections):
            return "#" + (self.index.sections.get(target) or target).replace(" ", "-")
        page = (self.path.parent / target).resolve()
        try:
            rel = page.relative_to(self.root).as_posix()
        except ValueError:
            raise ConversionError(f"link to {href}, outside the repository") from None
        if rel.endswith(".md") and re.match(r"^\d\d_", page.name) and page.parent.name == "book":
            return page.with_suffix(".ipynb").name + (f"#{anchor}" if anchor else "")
        if rel.endswith(".md") and rel in self.index.documents:
            return SITE_URL + rel[:-3] + ".html" + (f"#{anchor}" if anchor else "")
        return f"https://github.com/{REPOSITORY}/blob/{BRANCH}/{rel}"

    def inline_edits(self, text: str, tokens, line_offsets) -> list[tuple[int, int, str]]:
        """(start, end, replacement) in ``text`` for every role, link and footnote reference."""
        edits = []
        for tok in tokens:
            if tok.type != "inline" or not tok.children or tok.map is None:
                continue
            cursor = line_offsets[tok.map[0]]
            end_limit = line_offsets[tok.map[1]]
            self.marked = False
            for child in tok.children:
                if child.type == "code_inline":
                    start = text.find(child.markup, cursor, end_limit)
                    close = text.find(child.markup, start + len(child.markup), end_limit)
                    if start < 0 or close < 0:
                        raise ConversionError(f"cannot locate code span {child.content!r}")
                    cursor = close + len(child.markup)
                elif child.type == "math_inline":
                    start = text.find(child.content, cursor, end_limit)
                    if start >= 0:
                        cursor = start + len(child.content)
                elif child.type == "myst_role":
                    name = child.meta["name"]
                    source = "{%s}`%s`" % (name, child.content)
                    start = text.find(source, cursor, end_limit)
                    if start < 0:
                        raise ConversionError(f"cannot locate the role {source!r}")
                    end = start + len(source)
                    new = self.role(name, child.content, text[end:end + 3])
                    if name in GLUE_ROLES and re.match(r"^ ?%", text[end:end + 2]):
                        end += len(re.match(r"^ ?%", text[end:end + 2]).group(0))  # the unit
                    edits.append((start, end, new))
                    cursor = end
                elif child.type == "link_open":
                    href = child.attrs.get("href", "")
                    new = self.link(href)
                    start = text.find("](", cursor, end_limit)
                    if start >= 0 and new != href:
                        at = text.find(href, start, end_limit)
                        if at < 0:
                            raise ConversionError(f"cannot locate the link target {href!r}")
                        edits.append((at, at + len(href), new))
                        cursor = at + len(href)
                elif child.type == "footnote_ref":
                    label = child.meta["label"]
                    source = f"[^{label}]"
                    start = text.find(source, cursor, end_limit)
                    number = self.footnotes.setdefault(label, len(self.footnotes) + 1)
                    edits.append((start, start + len(source), f"<sup>{number}</sup>"))
                    cursor = start + len(source)
        return edits

    # -- blocks ---------------------------------------------------------------------------------
    def render(self, text: str) -> list[Part]:
        """One Markdown text → parts (Markdown, and solutions, which become their own cells)."""
        lines = text.splitlines(keepends=True)
        offsets = [0]
        for line in lines:
            offsets.append(offsets[-1] + len(line))
        offsets.append(offsets[-1])
        tokens = md().parse(text)
        edits = self.inline_edits(text, tokens, offsets)
        number = self.index.chapter_numbers.get(self.doc)
        if self.doc in self.index.parents:
            number = None  # a chapter's further page: the site shows its title unnumbered
        if number is not None and not self.titled:
            # the site numbers the chapter (Sphinx puts "3. " before its title); so does this
            for i, tok in enumerate(tokens):
                if tok.type == "heading_open" and tok.tag == "h1":
                    at = offsets[tok.map[0]]
                    at += re.match(r"#+[ \t]+", text[at:]).end()
                    edits.append((at, at, f"{number}. "))
                    self.titled = True
                    break
        parts: list[Part] = []
        out: list[str] = []

        def keep(a, b):  # source lines a..b with the inline edits inside them
            start, end = offsets[a], offsets[min(b, len(lines))]
            chunk, pos = [], start
            for s, e, new in sorted(edits):
                if start <= s < end:
                    chunk.append(text[pos:s])
                    chunk.append(new)
                    pos = e
            chunk.append(text[pos:end])
            out.append("".join(chunk))

        def flush():
            merged = re.sub(r"\n{3,}", "\n\n", "".join(out)).strip("\n")
            if merged.strip():
                parts.append(Part("markdown", merged + "\n"))
            out.clear()

        line = 0
        for i, tok in enumerate(tokens):
            if tok.map is None or tok.map[0] < line:
                continue
            if tok.type == "heading_open":
                self.heading_level = int(tok.tag[1])
            special = tok.type in ("myst_target", "myst_line_comment", "myst_block_break",
                                   "front_matter", "math_block_label",
                                   "footnote_reference_open", "amsmath") or is_directive(tok)
            if not special:
                continue
            keep(line, tok.map[0])
            indent = re.match(r"[ \t]*", lines[tok.map[0]]).group(0) if tok.map[0] < len(lines) else ""
            line = tok.map[1]
            if tok.type == "math_block_label":
                number = self.index.equations[tok.info]
                out.append(_indent(f"$$\n{tok.content.strip()}\n\\tag{{{number}}}\n$$\n", indent))
            elif tok.type == "amsmath":
                out.append(_indent(f"$$\n{tok.content.strip()}\n$$\n", indent))
            elif tok.type == "footnote_reference_open":
                label = tok.meta["label"]
                number = self.footnotes.setdefault(label, len(self.footnotes) + 1)
                first, *rest = lines[tok.map[0]:tok.map[1]]
                body = re.sub(r"^\[\^[^\]]+\]:\s*", "", first) + textwrap.dedent("".join(rest))
                note = self._markdown_only(body, "footnote")
                out.append(_indent(_quote(f"<sup>{number}</sup> {note.strip()}") + "\n", indent))
            elif is_directive(tok):
                d = directive(tok)
                if d.name == "solution":
                    flush()
                    parts.append(Part("solution", self.solution(d)))
                else:
                    out.append(_indent(self.block(d), indent))
            # targets, comments, block breaks and front matter: dropped
            out.append("\n")  # a replaced block ends a paragraph (or a quote) like a blank line
        keep(line, len(lines))
        flush()
        return parts

    def _markdown_only(self, text: str, where: str) -> str:
        parts = self.render(text)
        if any(p.kind != "markdown" for p in parts):
            raise ConversionError(f"a {{solution}} inside a {where} cannot be folded")
        return "\n".join(p.text.rstrip("\n") for p in parts)

    def block(self, d: Directive) -> str:
        name = d.name
        if name in ADMONITIONS or name in QUOTED:
            title = d.argument if name in ("admonition", *QUOTED) else (
                "See also" if name == "seealso" else name.capitalize())
            body = self._markdown_only(d.body, f"{{{name}}}")
            if "dropdown" in str(d.options.get("class", "")):
                return _details(title or name.capitalize(), body)
            return _quote((f"**{title}**\n\n" if title else "") + body) + "\n"
        if name == "exercise":
            number = self.exercises.pop(0)
            title = f"Exercise {number}" + (f" ({d.argument})" if d.argument else "")
            level = min(6, max(3, self.heading_level + 1))
            return f"{'#' * level} {title}\n\n{self._markdown_only(d.body, 'exercise')}\n"
        if name.startswith("prf:"):
            kind = name[4:]
            if kind == "proof":
                body = self._markdown_only(d.body, "proof")
                return _quote(f"**Proof.** {body} ∎") + "\n"
            title_kind, number = self.proofs.pop(0)
            title = f"{title_kind} {number}" + (f" ({d.argument})" if d.argument else "")
            return _quote(f"**{title}**\n\n" + self._markdown_only(d.body, name)) + "\n"
        if name == "literalinclude":
            return self.literalinclude(d)
        if name in CODE_DIRECTIVES:
            return f"```{d.argument or ''}\n{d.body}\n```\n"
        if name == "math":
            tag = f"\n\\tag{{{self.index.equations[d.options['label']]}}}" \
                if "label" in d.options else ""
            return f"$$\n{d.body.strip()}{tag}\n$$\n"
        if name == "glue:figure" and captioned_kind(d):
            # the site shows the glued figure here, numbered, with its caption; the notebook
            # shows the figure where the cell that makes it runs, and the caption here
            where = "above" if d.argument in self.glued_before else "below"
            caption = self._markdown_only(d.body, "figure caption").strip()
            return (f"**Figure {self.captioned.pop(0)}** (the figure `{d.argument}`, printed "
                    f"{where}): {caption}\n")
        if name in ("glue:figure", "glue", "glue:any", "glue:md", "glue:text"):
            where = "above" if d.argument in self.glued_before else "below"
            return f"*The figure `{d.argument}` (printed {where}).*\n"
        if name == "table" and captioned_kind(d):
            title = f"**Table {self.captioned.pop(0)}: {d.argument}**"
            return f"{title}\n\n{self._markdown_only(d.body, 'table')}\n"
        if name == "dropdown":
            return _details(d.argument, self._markdown_only(d.body, "dropdown"))
        raise ConversionError(f"the directive {{{name}}} has no plain-Markdown form in the "
                              "reader notebooks (dctutor/reader.py)")

    def solution(self, d: Directive) -> str:
        label = d.argument.strip()
        if label not in self.index.exercises:
            raise ConversionError(f"{{solution}} {label}: no exercise has this label")
        body = self._markdown_only(d.body, "solution")
        return _details(f"Solution to Exercise {self.index.exercises[label]}", body)

    def literalinclude(self, d: Directive) -> str:
        path = (self.path.parent / d.argument).resolve()
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines(keepends=True)
        options = dict(d.options)
        language = options.pop("language", "python" if path.suffix == ".py" else "")
        for ignored in ("emphasize-lines", "linenos", "lineno-start", "caption", "name",
                        "class"):
            options.pop(ignored, None)
        if "pyobject" in options:
            name = options.pop("pyobject")
            start, end = _pyobject_lines(source, name)
            if start is None:
                raise ConversionError(f"{{literalinclude}} {d.argument}: no object {name!r}")
            lines = lines[start - 1:end]
        if "lines" in options:
            chosen = []
            for piece in str(options.pop("lines")).split(","):
                a, _, b = piece.strip().partition("-")
                chosen.extend(lines[int(a) - 1:int(b) if b else int(a)])
            lines = chosen
        if "start-after" in options:
            marker = options.pop("start-after")
            at = next(i for i, l in enumerate(lines) if marker in l)
            lines = lines[at + 1:]
        if "end-before" in options:
            marker = options.pop("end-before")
            at = next(i for i, l in enumerate(lines) if marker in l)
            lines = lines[:at]
        if "dedent" in options:
            n = options.pop("dedent")
            lines = [l[int(n):] if n else l for l in lines] if n else \
                textwrap.dedent("".join(lines)).splitlines(keepends=True)
        if options:
            raise ConversionError(f"{{literalinclude}}: options not supported: {sorted(options)}")
        code = "".join(lines).rstrip("\n")
        while code.endswith("\n"):
            code = code[:-1]
        return f"```{language}\n{code}\n```\n"


def _pyobject_lines(source: str, dotted: str) -> tuple[int | None, int | None]:
    """First and last line (1-based) of the class or function ``dotted`` (``Class.method``
    allowed), as Sphinx's ``:pyobject:`` picks them: from its first decorator to its last
    line."""
    body = ast.parse(source).body
    node = None
    for part in dotted.split("."):
        node = next((n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                         ast.ClassDef)) and n.name == part), None)
        if node is None:
            return None, None
        body = node.body
    start = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return start, node.end_lineno


def _html_tables(text: str) -> str:
    """GFM tables in ``text`` as HTML tables. A table inside a quoted block is shown as text by
    some renderers (nbconvert's mistune); an HTML table is shown by all of them. Math stays as
    ``$…$`` text in the cells, for the notebook's MathJax to typeset."""
    from markdown_it import MarkdownIt

    tokens = md().parse(text)
    tables = [t.map for t in tokens if t.type == "table_open" and t.level == 0]
    if not tables:
        return text
    lines = text.splitlines(keepends=True)
    plain = MarkdownIt("commonmark").enable("table")
    for start, end in reversed(tables):
        html = plain.render("".join(lines[start:end])).strip()
        html = re.sub(r">\s+<", "><", html)  # one line: a blank line would end the HTML block
        lines[start:end] = [html + "\n"]
    return "".join(lines)


def _quote(text: str) -> str:
    text = _html_tables(text)
    return "\n".join(("> " + l) if l.strip() else ">" for l in text.strip("\n").splitlines())


def _indent(text: str, indent: str) -> str:
    if not indent:
        return text
    return "".join(indent + l if l.strip() else l for l in text.splitlines(keepends=True))


def _details(summary: str, body: str) -> str:
    return f"<details>\n<summary><b>{summary}</b></summary>\n\n{body.strip()}\n\n</details>\n"


# -- code cells ---------------------------------------------------------------------------------
def _first_assert(code: str) -> list[str]:
    """The conditions of the asserts in ``code``, as source text."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            found.append((node.lineno, ast.get_source_segment(code, node.test) or ""))
    return [" ".join(text.split()) for _, text in sorted(found)]


def _short(text: str, n: int = 90) -> str:
    return text if len(text) <= n else text[:n - 1].rstrip() + "…"


def check_title(code: str) -> str:
    """What a hidden cell does, in the one line that titles its Colab form."""
    conditions = _first_assert(code)
    first = next((l.strip() for l in code.splitlines() if l.strip()), "")
    if conditions and first.startswith("#"):
        return _short("Check: " + first.lstrip("# "))
    if conditions:
        more = f" (+{len(conditions) - 1} more)" if len(conditions) > 1 else ""
        return _short(f"Check: {conditions[0]}") + more
    if first.startswith("#"):
        return _short(first.lstrip("# "))
    if re.search(r"\bglue\(", code):
        return "Numbers for the text"
    return "Helper code (hidden on the web page)"


def form_cell(source: str, title: str, tags, extra=None) -> dict:
    meta = {"cellView": "form"}
    if tags:
        meta["tags"] = list(tags)
    meta.update(extra or {})
    return {"cell_type": "code", "execution_count": None, "metadata": meta, "outputs": [],
            "source": f"#@title {title}\n{source.rstrip()}\n"}


def run_time_rows(markdown: str) -> dict[str, str]:
    """``{"quick": ..., "laptop": ..., "full": ...}`` from the chapter's run-time box table."""
    rows = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.match(r"^`(quick|laptop|full)`", cells[0]):
            profile = re.match(r"^`(\w+)`", cells[0]).group(1)
            needs = f"; needs: {cells[2]}" if len(cells) > 2 else ""
            text = f"{cells[0]}: {cells[1]}{needs}"
            text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)  # links: their text
            rows[profile] = re.sub(r"[`*]", "", text)
    return rows


def colab_notes(markdown: str) -> list[str]:
    """Sentences of the run-time box about Colab (chapter 4: chapter 2's network is retrained)."""
    return [re.sub(r"[`*]", "", " ".join(p.split())) for p in re.split(r"\n\s*\n", markdown)
            if "Colab" in p and not p.lstrip().startswith("|")]


PROFILE_FORM = '''\
#@title Profile and device (run before the setup cell)
#@markdown `quick`: the 5,000-image samples shipped with `dctutor`, short schedules; minutes on a CPU. `laptop`: all 70,000 images, short schedules; about 10 minutes a chapter on a 2-core CPU, seconds on a GPU. `full`: all 70,000 images and the papers' schedules: meant for a GPU, and long.
PROFILE = "quick"  #@param ["quick", "laptop", "full"]
DEVICE = "auto"  #@param ["auto", "cpu", "cuda"]
RUN_TIME = {run_time}  # this chapter's run-time box
import dctutor
dctutor.book.choose_profile(PROFILE, DEVICE, RUN_TIME)
'''


def _pieces(text: str, width: int = 84) -> list[str]:
    """``text`` cut into string literals of at most ``width`` characters (at spaces)."""
    lines = textwrap.wrap(text, width, break_long_words=False, drop_whitespace=False)
    return lines or [""]


def profile_form(run_time: dict[str, str], notes: list[str]) -> dict:
    table = dict(run_time)
    if notes:
        table["colab"] = " ".join(notes)
    body = "{\n" + "".join(f"    {json.dumps(k)}: (\n" + "".join(
        f"        {json.dumps(piece, ensure_ascii=False)}\n"
        for piece in _pieces(v)) + "    ),\n" for k, v in table.items()) + "}"
    title, _, rest = PROFILE_FORM.partition("\n")
    return {"cell_type": "code", "execution_count": None,
            "metadata": {"cellView": "form", "tags": ["profile-form"]}, "outputs": [],
            "source": title + "\n" + rest.replace("{run_time}", body)}


# -- the notebook -------------------------------------------------------------------------------
def _cell_id(cell, seen):
    digest = hashlib.sha1((cell["cell_type"] + "".join(cell["source"])).encode()).hexdigest()[:8]
    cid, n = digest, 1
    while cid in seen:
        n += 1
        cid = f"{digest}-{n}"
    seen.add(cid)
    return cid


def _cells_of(path: Path) -> list[dict]:
    import jupytext

    nb = jupytext.read(path, fmt="md:myst")
    cells = []
    for cell in nb.cells:
        meta = {k: v for k, v in cell.metadata.items() if k in ("tags",)}
        cells.append({"cell_type": cell.cell_type, "source": cell.source, "metadata": meta})
    return cells


def reader_notebook(path: Path, index: BookIndex | None = None, bib: Bibliography | None = None,
                    root: Path = REPO) -> dict:
    """The reader notebook of the chapter ``path`` (``book/NN_name.md``) as an nbformat-4 dict."""
    path, root = Path(path).resolve(), Path(root).resolve()
    index = index or index_book(root)
    bib = bib or Bibliography(root / "book" / "references.bib")
    chapter = Chapter(path, index, bib, root)
    source_cells = _cells_of(path)

    # which names the prose uses, with which format, in what order
    for cell in source_cells:
        if cell["cell_type"] != "markdown":
            continue
        for tok in md().parse(cell["source"]):
            for child in tok.children or []:
                if child.type == "myst_role" and child.meta["name"] in GLUE_ROLES:
                    name, _, fmt = child.content.partition(":")
                    chapter.glue_formats.setdefault(name.strip(), fmt.strip())
            if is_directive(tok):
                for inner in md().parse(tok.content):
                    for child in inner.children or []:
                        if child.type == "myst_role" and child.meta["name"] in GLUE_ROLES:
                            name, _, fmt = child.content.partition(":")
                            chapter.glue_formats.setdefault(name.strip(), fmt.strip())

    cells, box = [], ""
    install_done = False
    for cell in source_cells:
        tags = cell["metadata"].get("tags", [])
        if cell["cell_type"] == "markdown":
            if "Run time and requirements" in cell["source"]:
                box = cell["source"]
            for part in chapter.render(cell["source"]):
                meta = {"tags": ["solution"]} if part.kind == "solution" else {}
                cells.append({"cell_type": "markdown", "metadata": meta, "source": part.text})
            continue
        code = cell["source"]
        shown = _glue_shown(code, chapter)
        if shown:
            chapter.glued_before.update(shown)
            specs = ", ".join(map(repr, _specs(shown, chapter)))
            code = code.rstrip() + f"\ndctutor.book.show_glued({specs})"
        # a {glue:figure} after this cell shows the figure "printed above"
        chapter.glued_before.update(_glued_names(code)[0])
        if "remove-cell" in tags:
            title = check_title(cell["source"])
            first, _, rest = code.lstrip("\n").partition("\n")
            if first.startswith("#") and first.lstrip("# ") in title and \
                    not title.endswith("…"):
                code = rest  # the comment is the title now
            cells.append(form_cell(code, title, tags))
        elif "hide-input" in tags:
            cells.append(form_cell(code, "Plotting code (hidden on the web page)", tags))
        else:
            out = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                   "source": code}
            if tags:
                out["metadata"]["tags"] = list(tags)
            cells.append(out)
        if not install_done and "import dctutor" in code and "except ImportError" in code:
            install_done = True
            cells.append(profile_form(run_time_rows(box), colab_notes(box)))
    unshown = [n for n in chapter.glue_formats if n not in chapter.glued_before]
    if unshown:
        raise ConversionError(f"{path.name}: the prose names glued values that no code cell "
                              f"glues with glue(\"name\", ...) or glue(f\"...\", ...): {unshown}")
    if not install_done:
        raise ConversionError(f"{path.name}: no guarded install cell (try: import dctutor / "
                              "except ImportError) to put the profile form after")
    if chapter.cited:
        cells.append({"cell_type": "markdown", "metadata": {},
                      "source": "## References\n\n" + bib.references(chapter.cited) + "\n"})
    cells.insert(0, {"cell_type": "markdown", "metadata": {}, "source": _banner(path)})
    seen = set()
    for cell in cells:
        cell["source"] = cell["source"].splitlines(keepends=True)
        cell["id"] = _cell_id(cell, seen)
    return {
        "cells": cells,
        "metadata": {
            "colab": {"provenance": [], "toc_visible": True},
            "dctutor": {"source": path.relative_to(root).as_posix(),
                        "generated_by": "python -m dctutor notebooks"},
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _glue_shown(code: str, chapter: Chapter) -> list[str]:
    """The names this code cell glues that the prose uses, in the order the prose uses them."""
    names, patterns = _glued_names(code)
    used = list(chapter.glue_formats)
    return [n for n in used if (n in names or any(p.match(n) for p in patterns))
            and n not in chapter.glued_before]


def _specs(names, chapter) -> list[str]:
    return [f"{n}:{chapter.glue_formats[n]}" if chapter.glue_formats.get(n) else n
            for n in names]


def _banner(path: Path) -> str:
    return (f"*This notebook is generated from [`book/{path.name}`](https://github.com/"
            f"{REPOSITORY}/blob/{BRANCH}/book/{path.name}) by `python -m dctutor notebooks`; "
            f"the same chapter is on the [book's site]({SITE_URL}book/{path.stem}.html). "
            "Numbers in `code type` followed by \"printed above\" are computed by your run and "
            "shown by the cell above them.*\n")


def chapters(book_dir: Path) -> list[Path]:
    """The chapter pages ``NN_name.md`` in ``book_dir``, sorted by name (a chapter's further
    pages, ``NN_more.md``, sort with it; :func:`reading_order` gives the site's order)."""
    return sorted(Path(book_dir).glob(CHAPTER_GLOB))


def reading_order(stems: list[str], root: Path = REPO) -> list[str]:
    """``stems`` (``NN_name``) in ``_toc.yml``'s order; stems it does not list go last, by name."""
    order = {Path(doc).stem: i for i, doc in enumerate(toc_documents(root))}
    return sorted(stems, key=lambda stem: (order.get(stem, len(order)), stem))


def _dumps(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def write_notebooks(out_dir: Path | None = None, root: Path = REPO, check: bool = False,
                    only: list[str] | None = None) -> list[tuple[Path, bool]]:
    """Write (or with ``check``, compare) every chapter's reader notebook; returns
    ``(notebook path, changed)`` per chapter. Notebooks of chapters that no longer exist are
    removed (reported as changed)."""
    root = Path(root).resolve()
    out_dir = Path(out_dir) if out_dir else root / NOTEBOOKS
    index = index_book(root)
    bib = Bibliography(root / "book" / "references.bib")
    results = []
    expected = set()
    for source in chapters(root / "book"):
        if only and not any(source.stem.startswith(o) for o in only):
            continue
        target = out_dir / (source.stem + ".ipynb")
        expected.add(target.name)
        text = _dumps(reader_notebook(source, index, bib, root))
        changed = not target.is_file() or target.read_text(encoding="utf-8") != text
        if changed and not check:
            out_dir.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        results.append((target, changed))
    if not only and out_dir.is_dir():
        for stale in sorted(out_dir.glob("[0-9][0-9]_*.ipynb")):
            if stale.name not in expected:
                if not check:
                    stale.unlink()
                results.append((stale, True))
    return results


# -- the site's buttons (a Sphinx extension: ``dctutor.reader`` in _config.yml) ------------------
def _point_buttons_at_notebooks(app, pagename, templatename, context, doctree):
    """Make a chapter page's Colab button and ``.ipynb`` download serve its reader notebook.

    sphinx-book-theme builds the Colab URL from the page's own path (``book/NN_name`` + ``.ipynb``
    when such a file exists, else ``.md``) and offers the notebook myst-nb executed (MyST
    markup and all) for download. This runs after it (priority 502): it rewrites the Colab URL
    to ``notebooks/NN_name.ipynb`` and puts the reader notebook where the download button points.
    """
    import shutil

    name = pagename.rsplit("/", 1)[-1]
    if not re.match(r"^\d\d_", name):
        return
    notebook = Path(app.srcdir) / NOTEBOOKS / f"{name}.ipynb"
    if not notebook.is_file():
        from sphinx.util import logging

        logging.getLogger(__name__).warning(
            f"{pagename}: no reader notebook {NOTEBOOKS}/{name}.ipynb "
            "(run python -m dctutor notebooks)", type="dctutor", subtype="notebooks")
        return
    if context.get("ipynb_source"):
        target = Path(app.outdir) / "_sources" / context["ipynb_source"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(notebook, target)

    def fix(buttons):
        for button in buttons:
            fix(button.get("buttons", []))
            url = button.get("url", "")
            match = re.match(r"^(https://colab\.research\.google\.com/github/[^/]+/[^/]+/blob/"
                             r"[^/]+/)", url)
            if match:
                button["url"] = f"{match.group(1)}{NOTEBOOKS}/{name}.ipynb"

    fix(context.get("header_buttons", []))


def setup(app):
    app.connect("html-page-context", _point_buttons_at_notebooks, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
