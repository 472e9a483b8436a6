"""Helpers for the chapters themselves (not for the methods).

:func:`glue` stores a value for the book's ``{glue:}`` roles when the page is built by Jupyter
Book (myst-nb), and simply shows the value elsewhere — in Colab, plain Jupyter or nbval — so the
chapters run without the book toolchain installed. It also keeps every value, so that the reader
notebooks (:mod:`dctutor.reader`) can show the numbers their prose refers to with
:func:`show_glued`, and :func:`choose_profile` is their profile form. :func:`describe_confusions`
and :func:`describe_mismatches` turn results into the sentences a chapter glues into its prose.
"""

from __future__ import annotations

import os
import sys

GLUED: dict = {}  # every value glued in this kernel, by name
# The profile set outside the notebook (a shell, `dctutor full-run`, CI) when the package was
# first imported — before a reader notebook's form could set one. It wins over the form.
_PROFILE_AT_START = os.environ.get("DCTUTOR_PROFILE", "").strip().lower() or None
_DEVICE_AT_START = os.environ.get("DCTUTOR_DEVICE", "").strip() or None


def glue(name: str, value, display: bool = True) -> None:
    """``myst_nb.glue(name, value, display)`` when myst-nb is installed, else display only.

    NumPy scalars and 0-d tensors are turned into Python numbers first: myst-nb formats
    ``{glue:text}`name:.3f``` from the value's text form, and NumPy 2 writes that as
    ``np.float64(0.5)``, which no format spec can read.
    """
    if getattr(value, "shape", None) == () and hasattr(value, "item"):
        value = value.item()
    _check_legible(name, value)
    GLUED[name] = value
    try:
        from myst_nb import glue as _glue
    except ImportError:
        if display:
            from IPython.display import display as _display

            _display(value)
        return
    _glue(name, value, display=display)


def _check_legible(name: str, value) -> None:
    """A glued figure must show all its text at ``plots.MIN_FONT_PT`` or more on the page.

    Checked where every chapter figure passes (the pages glue their figures), so a figure whose
    labels the page would shrink below 10 pt fails the build, with the text that is too small.
    """
    from matplotlib.figure import Figure

    if not isinstance(value, Figure):
        return
    from . import plots

    sizes = plots.displayed_font_sizes(value)
    if sizes and sizes[0][0] < plots.MIN_FONT_PT:
        size, text = sizes[0]
        raise ValueError(f"figure {name!r}: the text {text!r} shows at {size:.1f} pt on the page, "
                         f"under {plots.MIN_FONT_PT} pt; make the figure narrower than "
                         f"plots.PAGE_WIDTH ({plots.PAGE_WIDTH:.1f} in) or its text larger")


def _formatted(value, fmt: str) -> str:
    """``value`` as the page shows it: ``{glue:text}`name:fmt``` or ``{glue:md}`name```."""
    data = getattr(value, "data", None)  # IPython.display.Markdown and friends
    if isinstance(data, str):
        return data.strip()
    if fmt:
        try:
            return format(value, fmt)
        except (TypeError, ValueError):
            pass
    return str(value)


def show_glued(*specs: str, heading: str = "Numbers used below") -> None:
    """Show the glued values named by ``specs`` (``"name"`` or ``"name:.3f"``) on one line.

    The reader notebooks call this at the end of every cell that glues a value their prose
    refers to, where the prose says "(printed above)". Shown as Markdown, with a plain-text
    alternative.
    """
    items = []
    for spec in specs:
        name, _, fmt = spec.partition(":")
        if name not in GLUED:
            raise KeyError(f"nothing was glued under {name!r} in this kernel (glue values with "
                           "dctutor.book.glue, not myst_nb.glue, and run the cells above first)")
        items.append((name, _formatted(GLUED[name], fmt)))
    markdown = f"**{heading}:** " + " · ".join(f"`{n}` = {v}" for n, v in items)
    plain = f"{heading}: " + " · ".join(f"{n} = {v}" for n, v in items)
    try:
        from IPython.display import display

        display({"text/markdown": markdown, "text/plain": plain}, raw=True)
    except ImportError:  # pragma: no cover - outside IPython
        print(plain)


def describe_confusions(confusions) -> str:
    """``"7 taken for 9 (12%); …"`` from :func:`dctutor.metrics.top_confusions`' triples."""
    return "; ".join(f"{a} taken for {b} ({share:.0%})" for a, b, share in confusions)


def describe_mismatches(mismatches) -> str:
    """The sentence chapter 4 puts under a confusion matrix, from
    :func:`dctutor.metrics.mismatched_clusters`' triples: whether the confusions it lists are
    real mixes of classes or an artefact of the one-to-one matching of clusters to classes."""
    if not mismatches:
        return ("Every cluster is matched to the class most of its points belong to, so each "
                "confusion above is a real mix of two classes in one cluster.")
    parts = [f"the cluster matched to {m} is mostly {major} ({share:.0%} of it)"
             for m, major, share in mismatches]
    return ("Some of these confusions are an artefact of the one-to-one matching: "
            + "; ".join(parts) + ". A class split over two clusters can keep only one of them "
            "under its own name, and the other is matched to a class left without a cluster of its own.")


def _in_colab() -> bool:
    return "google.colab" in sys.modules


def choose_profile(profile: str, device: str = "auto", run_time: dict | None = None) -> str:
    """The reader notebooks' profile form: set ``DCTUTOR_PROFILE`` (and ``DCTUTOR_DEVICE``)
    before the chapter's ``config.setup``, and print what the choice costs here.

    A profile or device set outside the notebook (in the shell that started Jupyter, by
    ``python -m dctutor full-run``, by CI) wins over the form, and the printout says so.
    Returns the profile in force.
    """
    from . import config

    run_time = run_time or {}
    profile = profile.strip().lower()
    if profile not in config.PROFILES:
        raise ValueError(f"PROFILE = {profile!r}: choose one of {', '.join(config.PROFILES)}")
    if _PROFILE_AT_START and _PROFILE_AT_START != profile:
        print(f"DCTUTOR_PROFILE={_PROFILE_AT_START} was set outside this notebook; it wins "
              f"over the form's {profile!r}.")
        profile = _PROFILE_AT_START
    os.environ["DCTUTOR_PROFILE"] = profile
    if _DEVICE_AT_START:
        os.environ["DCTUTOR_DEVICE"] = _DEVICE_AT_START
    elif device and device != "auto":
        os.environ["DCTUTOR_DEVICE"] = device
    else:
        os.environ.pop("DCTUTOR_DEVICE", None)
    dev = config.device()
    gpu = dev.type == "cuda"
    where = f"GPU runtime ({config.device_name(dev)})" if gpu else f"{config.device_name(dev)}"
    print(f"Profile: {profile} · device: {where}")
    if profile in run_time:
        print(f"Expected run time of this notebook — {run_time[profile]}")
    if profile == "full":
        print("The full profile trains on all 70,000 images with the papers' schedules: it is "
              "long" + ("" if gpu else ", and without a GPU very long") + ". Choose 'quick' in "
              "the form and run this cell again to change your mind.")
    elif profile == "laptop" and not gpu:
        print("The laptop profile trains on all 70,000 images with short schedules: about 10 "
              "minutes a chapter on 2 CPU cores. Choose 'quick' for a few minutes.")
    elif gpu and "full" in run_time:
        print(f"(This is a GPU runtime; the 'full' profile would take: {run_time['full']})")
    if _in_colab() and run_time.get("colab"):
        print(f"In Colab: {run_time['colab']}")
    return profile
