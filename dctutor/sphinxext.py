"""Small touches to the site that Sphinx makes (listed in ``_config.yml``'s ``extra_extensions``).

The build-status page's ``{nb-exec-table}`` (myst-nb) marks each chapter's run with the emoji ✅
or ❌. A machine without an emoji font shows an empty box instead, so the page says it in words:
"succeeded" / "failed", styled by ``_static/dctutor.css`` (classes ``dctutor-status-ok`` and
``dctutor-status-failed``).
"""

from __future__ import annotations

from docutils import nodes
from sphinx.transforms.post_transforms import SphinxPostTransform

STATUS_WORDS = {"✅": ("succeeded", "dctutor-status-ok"), "❌": ("failed", "dctutor-status-failed")}


def replace_status_marks(document: nodes.Node) -> int:
    """Replace every table cell whose whole text is ✅ or ❌ by a word; returns how many."""
    replaced = 0
    for entry in list(document.findall(nodes.entry)):
        text = entry.astext().strip()
        if text not in STATUS_WORDS:
            continue
        word, css_class = STATUS_WORDS[text]
        entry.children = []
        entry += nodes.paragraph("", "", nodes.inline(word, word, classes=[css_class]))
        replaced += 1
    return replaced


class StatusWords(SphinxPostTransform):
    """Runs after myst-nb has filled in the execution table (its post-transform, priority 8)."""

    default_priority = 20

    def run(self, **kwargs) -> None:
        replace_status_marks(self.document)


def setup(app):
    app.add_post_transform(StatusWords)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
