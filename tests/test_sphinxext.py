from docutils import nodes
from docutils.frontend import get_default_settings
from docutils.parsers.rst import Parser
from docutils.utils import new_document

from dctutor.sphinxext import replace_status_marks


def test_status_table_says_it_in_words():
    document = new_document("status", get_default_settings(Parser))
    table = nodes.table()
    for mark in ("✅", "❌", "12.5"):
        table += nodes.entry("", nodes.paragraph(text=mark))
    document += table
    assert replace_status_marks(document) == 2
    text = document.astext()
    assert "✅" not in text and "❌" not in text
    assert "succeeded" in text and "failed" in text and "12.5" in text
    classes = [n["classes"] for n in document.findall(nodes.inline)]
    assert classes == [["dctutor-status-ok"], ["dctutor-status-failed"]]
