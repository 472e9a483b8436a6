"""Plumbing shared by every trainer: minibatch indices, a history record, a NaN check.

Trainers in ``autoencoders``, ``dec`` and ``iic`` keep the data on the device as one tensor and
slice minibatches with :func:`batches`; they log with :class:`History` every few steps (never a
``.item()`` per step) and call :func:`check_finite` on what they log.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class TrainingDiverged(FloatingPointError):
    """A loss became NaN or infinite during training."""


class History(dict):
    """A training record: each key maps to a list of logged values.

    >>> h = History(); h.log(epoch=1, loss=0.5); h.log(epoch=2, loss=0.25); h["loss"]
    [0.5, 0.25]
    """

    def log(self, **values) -> None:
        """Append one value to each named series (tensors become Python floats or lists)."""
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu()
                value = value.item() if value.numel() == 1 else value.tolist()
            self.setdefault(key, []).append(value)

    def last(self, key: str):
        """The most recent value of ``key``."""
        if not self.get(key):
            raise KeyError(f"nothing logged under {key!r}; logged keys: {sorted(self)}")
        return self[key][-1]

    def __getattr__(self, key: str):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __repr__(self) -> str:
        parts = [f"{k}: {len(v)} values" for k, v in self.items()]
        return f"History({', '.join(parts)})"


def batches(n: int, batch_size: int, device: torch.device | str = "cpu",
            generator: torch.Generator | None = None, shuffle: bool = True,
            drop_last: bool = False) -> Iterator[torch.Tensor]:
    """Index tensors (on ``device``) for one pass over ``n`` samples in minibatches."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if n < 1:
        raise ValueError("cannot make batches of an empty dataset")
    if shuffle:
        order = torch.randperm(n, generator=generator).to(device)
    else:
        order = torch.arange(n, device=device)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


def check_finite(value: torch.Tensor | float, what: str = "loss", step: int | None = None) -> None:
    """Raise :class:`TrainingDiverged` if ``value`` holds a NaN or an infinity.

    Call it on logged values only (each call synchronises with the device).
    """
    t = torch.as_tensor(value)
    if not bool(torch.isfinite(t).all()):
        where = f" at step {step}" if step is not None else ""
        raise TrainingDiverged(
            f"{what} became {t.flatten()[~torch.isfinite(t.flatten())][0].item()}{where}: "
            "training diverged. Lower the learning rate, check the inputs are in [0, 1], "
            "or use a different seed."
        )
