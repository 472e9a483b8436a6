"""Helpers for the chapters themselves (not for the methods).

:func:`glue` stores a value for the book's ``{glue:}`` roles when the page is built by Jupyter
Book (myst-nb), and simply shows the value elsewhere — in Colab, plain Jupyter or nbval — so the
chapters run without the book toolchain installed.
"""

from __future__ import annotations


def glue(name: str, value, display: bool = True) -> None:
    """``myst_nb.glue(name, value, display)`` when myst-nb is installed, else display only.

    NumPy scalars and 0-d tensors are turned into Python numbers first: myst-nb formats
    ``{glue:text}`name:.3f``` from the value's text form, and NumPy 2 writes that as
    ``np.float64(0.5)``, which no format spec can read.
    """
    if getattr(value, "shape", None) == () and hasattr(value, "item"):
        value = value.item()
    try:
        from myst_nb import glue as _glue
    except ImportError:
        if display:
            from IPython.display import display as _display

            _display(value)
        return
    _glue(name, value, display=display)
