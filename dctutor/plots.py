"""The figures the chapters share, in one house style (and the number format of printed tables).

Every chapter calls :func:`set_style` once (the setup cell does it) and uses
:data:`DIGIT_COLORS` for anything coloured by class, so a "3" has the same colour everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
from matplotlib.colors import ListedColormap

from .metrics import aligned_confusion

# Ten distinguishable colours, one per class, used in every chapter.
DIGIT_COLORS = sns.color_palette("tab10", 10)
DIGIT_CMAP = ListedColormap(DIGIT_COLORS, name="dctutor_digits")


# Where the figures are read. The site's text column is about 730 px wide at 1280 px
# (sphinx-book-theme with _static/dctutor.css); a figure is drawn at 96 dpi, so one figure inch
# is one CSS inch and a figure no wider than PAGE_WIDTH inches shows at its own size. A wider one
# is scaled down to the column, and its text with it.
PAGE_WIDTH_PX = 730
DPI = 96
PAGE_WIDTH = PAGE_WIDTH_PX / DPI      # inches: the widest figure that is not scaled down
MIN_FONT_PT = 10                       # the smallest text a figure may show on the page

# The house font sizes, in points. Relative sizes follow font.size: "small" is 10 pt, the
# smallest a figure uses; "x-small" and below would fall under MIN_FONT_PT.
FONT_SIZES = {
    "font.size": 12,
    "axes.titlesize": 12,
    "axes.labelsize": 12,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "legend.fontsize": 11,
    "legend.title_fontsize": 11,
    "figure.titlesize": 13,
}


def set_style() -> None:
    """Seaborn's white-grid theme with the book's font sizes and figure defaults.

    Text is at least :data:`MIN_FONT_PT` points as the page shows it, provided a figure is no
    wider than :data:`PAGE_WIDTH` inches (the default size is) and uses no size below "small";
    :func:`displayed_font_sizes` measures it.
    """
    sns.set_theme(context="notebook", style="whitegrid", palette=DIGIT_COLORS)
    plt.rcParams.update({
        **FONT_SIZES,
        "figure.dpi": DPI,
        "savefig.dpi": 2 * DPI,
        "figure.figsize": (min(7.2, PAGE_WIDTH), 4.0),
        "image.cmap": "gray_r",
    })


def displayed_font_sizes(fig, page_width_px: float = PAGE_WIDTH_PX) -> list[tuple[float, str]]:
    """``(size, text)`` for every visible text of ``fig``: its size in points as the page shows it.

    The notebook saves a figure as a PNG at ``fig.dpi`` with a tight bounding box, and the page
    shows that PNG at one image pixel per CSS pixel (96 per inch), scaled down to the text column
    if it is wider. So a ``s``-point text shows at ``s · dpi/96 · min(1, column / PNG width)``
    points. Sorted, smallest first.
    """
    import io

    from matplotlib.text import Text

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi, bbox_inches="tight")
    width_px = int.from_bytes(buffer.getvalue()[16:20], "big")   # the PNG header's width
    scale = fig.dpi / 96 * min(1.0, page_width_px / width_px)
    sizes = []
    for text in fig.findobj(Text):
        if text.get_text().strip() and _drawn(text):
            sizes.append((round(text.get_fontsize() * scale, 2), text.get_text()))
    return sorted(sizes)


def _drawn(text) -> bool:
    """Whether ``text`` is on the page: it and its axes (if any) visible."""
    return text.get_visible() and (text.axes is None or text.axes.get_visible())


def rounded(table, digits: int = 3):
    """``table.round(digits)`` as the book prints numbers: no "-0.000", counts as integers.

    Rounding keeps the sign of a tiny negative number, and -0.0 prints with its minus; adding 0.0
    turns -0.0 into 0.0 and changes nothing else. A float column of whole numbers, some above 1,
    is a count that a transposed or mixed table turned into floats (9.0): it prints as integers.
    """
    out = table.round(digits)
    for column in out.select_dtypes("float").columns:
        values = out[column]
        finite = values.dropna()
        if len(finite) and (finite == finite.round()).all() and (finite.abs() > 1).any():
            out[column] = values.astype("Int64")
        else:
            out[column] = values + 0.0
    return out


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def scatter_embedding(Z, labels, ax=None, title: str | None = None, centers=None,
                      class_names: Sequence[str] | None = None, s: float = 4.0,
                      legend: bool = True, alpha: float = 0.7):
    """2-D points ``Z`` (N × 2) coloured by ``labels``; optional ``centers`` as black triangles."""
    Z, labels = _np(Z), _np(labels).astype(int)
    if Z.ndim != 2 or Z.shape[1] != 2:
        raise ValueError(f"scatter_embedding needs N × 2 points, got shape {Z.shape}")
    if len(Z) != len(labels):
        raise ValueError(f"{len(Z)} points but {len(labels)} labels")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(Z[:, 0], Z[:, 1], c=[DIGIT_COLORS[k % 10] for k in labels], s=s, alpha=alpha,
               linewidths=0, rasterized=True)
    if centers is not None:
        C = _np(centers)
        ax.scatter(C[:, 0], C[:, 1], marker="^", c="black", s=90, edgecolors="white",
                   linewidths=0.8, label="centres")
    if legend:
        names = class_names or [str(k) for k in range(10)]
        handles = [plt.Line2D([], [], marker="o", ls="", color=DIGIT_COLORS[k], label=names[k])
                   for k in sorted(set(labels.tolist())) if k < len(names)]
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5),
                  frameon=False, fontsize="small", markerscale=1.2)
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def mix_colors(q, colors: Sequence | None = None) -> np.ndarray:
    """One RGB colour per point: the cluster colours mixed in proportion to its row of ``q``.

    q (N × K) soft assignments, tensor or array → N × 3 floats in [0, 1]. A point sure of cluster
    j gets cluster j's colour (``colors[j]``, by default :data:`DIGIT_COLORS`); an undecided one a
    muddy mix. Chapter 3 colours its toy points and the force field's background this way.
    """
    q = _np(q)
    if q.ndim != 2:
        raise ValueError(f"mix_colors needs N × K soft assignments, got shape {q.shape}")
    palette = np.asarray(colors if colors is not None else DIGIT_COLORS[:q.shape[1]], dtype=float)
    if len(palette) != q.shape[1]:
        raise ValueError(f"{q.shape[1]} clusters but {len(palette)} colours")
    return np.clip(q @ palette[:, :3], 0, 1)


def soft_assignments(z, q, centers, ax=None, title: str | None = None, ring=None):
    """2-D points ``z`` (N × 2) coloured by their soft assignments ``q`` (N × K, :func:`mix_colors`),
    the ``centers`` (K × 2) as black triangles, and the points where the boolean mask ``ring`` (N,)
    is true circled. Chapter 3's toy problem (its targets and its gradient descent)."""
    z, q, C = _np(z), _np(q), _np(centers)
    if z.ndim != 2 or z.shape[1] != 2 or len(q) != len(z):
        raise ValueError(f"soft_assignments needs N × 2 points and N × K rows, got {z.shape} "
                         f"and {q.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(z[:, 0], z[:, 1], c=mix_colors(q), s=9, linewidths=0)
    if ring is not None:
        ring = _np(ring).astype(bool)
        ax.scatter(z[ring, 0], z[ring, 1], s=40, facecolors="none", edgecolors="black",
                   linewidths=0.8)
    ax.scatter(C[:, 0], C[:, 1], marker="^", c="black", s=90, edgecolors="white", linewidths=0.8)
    if title:
        ax.set_title(title)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xticks([]), ax.set_yticks([])
    return ax


def print_table(columns: Sequence[str], rows: Mapping[str, Sequence], width: int = 28) -> None:
    """Print labelled rows of numbers under column names, one row per line.

    ``rows`` maps a label to its values (numbers, NumPy scalars or 0-d tensors); whole numbers
    print as integers, the rest with three decimals. The label column is ``width`` characters
    wide. Chapter 3's small tables (shares of the target, points per cluster).
    """
    print(" " * width + "".join(f"{c:>9s}" for c in columns))
    for label, values in rows.items():
        cells = []
        for v in values:
            v = v.item() if hasattr(v, "item") else v
            integer = isinstance(v, (int, np.integer)) and not isinstance(v, bool)
            cells.append(f"{v:9d}" if integer else f"{v:9.3f}")
        print(f"{label:{width}s}" + "".join(cells))


def image_grid(rows: Sequence | np.ndarray | torch.Tensor, row_labels: Sequence[str] | None = None,
               col_labels: Sequence[str] | None = None, cell: float = 0.9, cmap: str = "gray_r",
               title: str | None = None):
    """A grid of 28 × 28 images: ``rows`` is a list of batches (each n × 784 or n × 28 × 28).

    Returns the figure. A single tensor of shape R × C × 28 × 28 works too. ``cell`` is the
    side of one image in inches; a grid that would be wider than the page (:data:`PAGE_WIDTH`)
    gets smaller cells instead, so that its labels keep their size.
    """
    rows = [_np(r).reshape(len(r), 28, 28) for r in rows]
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    # room for the row labels: about 0.08 in per character at 10 pt
    label_room = 0.25 + 0.08 * max(map(len, row_labels)) if row_labels else 0.0
    cell = min(cell, (PAGE_WIDTH - 0.1 - label_room) / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell * n_cols + label_room,
                                                      cell * n_rows + (0.4 if title else 0)),
                             squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i, j]
            ax.set_xticks([]), ax.set_yticks([])
            ax.grid(False)
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(row):
                ax.imshow(row[j], cmap=cmap, vmin=0, vmax=max(1.0, float(row[j].max())))
            if j == 0 and row_labels:
                ax.set_ylabel(row_labels[i], rotation=0, ha="right", va="center", fontsize="small")
            if i == 0 and col_labels:
                ax.set_title(col_labels[j], fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout(pad=0.2)
    return fig


def confusion_matrix(y_true, y_pred, ax=None, class_names: Sequence[str] | None = None,
                     normalize: bool = True, title: str | None = None):
    """Heatmap of true class × predicted cluster, clusters renamed to their matched class.

    Clusters are aligned with :func:`dctutor.metrics.align_labels`; rows are true classes and,
    with ``normalize``, sum to 1.
    """
    counts = aligned_confusion(y_true, y_pred, normalize=normalize)
    k = len(counts)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.2, 5.2))
    names = list(class_names) if class_names else [str(i) for i in range(k)]
    sns.heatmap(counts, ax=ax, cmap="Blues", vmin=0, vmax=1 if normalize else None,
                annot=True, fmt=".2f" if normalize else ".0f", annot_kws={"fontsize": "small"},
                xticklabels=names, yticklabels=names, cbar=False, square=True)
    ax.set_xlabel("cluster (matched to class)")
    ax.set_ylabel("true class")
    if title:
        ax.set_title(title)
    return ax


def training_curves(series: Mapping[str, Sequence[float]], ax=None, xlabel: str = "epoch",
                    ylabel: str = "loss", logy: bool = False, title: str | None = None):
    """Line plot of named series (e.g. ``{"train": h["train_loss"], "held-out": h["val_loss"]}``)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.5))
    for name, values in series.items():
        values = _np(values)
        ax.plot(np.arange(1, len(values) + 1), values, label=name, lw=1.6)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if len(series) > 1:
        ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    return ax
