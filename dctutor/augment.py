"""Batched, on-device image augmentations for IIC (chapter 5).

IIC learns by asking a network to give an image and a randomly perturbed copy of it the same
cluster. The perturbations decide what the clusters become invariant to, so they are the part of
the method a reader tunes most. Every augmentation here

* takes a batch ``x`` of shape N × C × H × W (floats in [0, 1]) on any device and returns a new
  batch of the same shape on the same device — no per-image Python loop, no trip to the CPU;
* draws its own random parameters for every image (one rotation angle per digit, not one per
  batch) from an optional :class:`torch.Generator` living on the same device, so a seeded
  generator gives the same augmented batch every time;
* applies itself to each image with probability ``p`` (default 1).

Geometric augmentations (:class:`Rotation`, :class:`Skew`, :class:`CropResize`) are affine maps.
Each one only produces a batch of 3 × 3 matrices; :class:`Compose` multiplies consecutive
matrices together and resamples the images once with ``affine_grid`` / ``grid_sample``, so a
rotation followed by a skew followed by a crop costs one interpolation (and blurs once).
Pixel augmentations (:class:`Binarize`, :class:`Noise`) act on intensities.

>>> import torch
>>> x = torch.rand(8, 1, 28, 28)
>>> aug = Compose(Rotation(25), CropResize((0.7, 1.0)), Noise(0.2))
>>> aug(x, torch.Generator().manual_seed(0)).shape
torch.Size([8, 1, 28, 28])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "Augmentation", "AffineAugmentation", "Rotation", "Skew", "CropResize", "Binarize", "Noise",
    "Compose", "Identity", "NAMES", "named", "as_images",
]


# ---------------------------------------------------------------------------------------------
# helpers


def as_images(x: torch.Tensor, side: int = 28) -> torch.Tensor:
    """``x`` as an N × 1 × side × side batch: accepts N × side² (flat), N × side × side or 4-D."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"expected a torch.Tensor of images, got {type(x).__name__}")
    if x.dim() == 2 and x.shape[1] == side * side:
        return x.reshape(-1, 1, side, side)
    if x.dim() == 3 and x.shape[1:] == (side, side):
        return x.unsqueeze(1)
    if x.dim() == 4:
        return x
    raise ValueError(
        f"images must be N×{side * side}, N×{side}×{side} or N×C×H×W, got shape {tuple(x.shape)}"
    )


def _check_batch(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"augmentations take a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(
            f"augmentations take an N×C×H×W batch, got shape {tuple(x.shape)} "
            "(use augment.as_images(x) for N×784 inputs)"
        )
    if not x.is_floating_point():
        raise ValueError(f"augmentations take float images in [0, 1], got dtype {x.dtype}")


def _check_generator(generator: torch.Generator | None, x: torch.Tensor) -> None:
    if generator is not None and torch.device(generator.device).type != x.device.type:
        raise ValueError(
            f"the generator lives on {generator.device} but the images on {x.device}; "
            f"make it with torch.Generator(device={str(x.device)!r})"
        )


def _uniform(n: int, low: float, high: float, x: torch.Tensor,
             generator: torch.Generator | None) -> torch.Tensor:
    """``n`` draws from U(low, high) on ``x``'s device, in ``x``'s dtype."""
    u = torch.rand(n, generator=generator, device=x.device, dtype=x.dtype)
    return low + (high - low) * u


def _chosen(n: int, p: float, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor | None:
    """A boolean mask of the images to transform (each with probability ``p``); None for p = 1."""
    if p >= 1.0:
        return None
    return torch.rand(n, generator=generator, device=x.device) < p


def _range(value: float | Sequence[float], what: str, symmetric: bool = True,
           low_bound: float | None = None, high_bound: float | None = None) -> tuple[float, float]:
    """A (low, high) pair from a number (symmetric ±value, or 0..value) or a pair."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{what} must be non-negative, got {value}")
        low, high = (-float(value), float(value)) if symmetric else (0.0, float(value))
    else:
        try:
            low, high = (float(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be a number or a (low, high) pair, got {value!r}") from None
    if low > high:
        raise ValueError(f"{what}: low {low} is above high {high}")
    if low_bound is not None and low < low_bound:
        raise ValueError(f"{what} must be at least {low_bound}, got {(low, high)}")
    if high_bound is not None and high > high_bound:
        raise ValueError(f"{what} must be at most {high_bound}, got {(low, high)}")
    return low, high


def _check_p(p: float) -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"the probability p must be in [0, 1], got {p}")
    return float(p)


# ---------------------------------------------------------------------------------------------
# the augmentations


class Augmentation:
    """An augmentation: ``aug(x, generator=None)`` maps an N × C × H × W batch to a new one."""

    p: float = 1.0

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_batch(x)
        _check_generator(generator, x)
        return self._apply(x, generator)

    def _apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class Identity(Augmentation):
    """Leaves the batch as it is (a copy), for "no augmentation" baselines."""

    def _apply(self, x, generator):
        return x.clone()


class AffineAugmentation(Augmentation):
    """A geometric augmentation given by one random 3 × 3 affine matrix per image.

    Matrices act on normalised coordinates (−1 … 1 across the image, ``align_corners=False``)
    and map a point of the *input* image to where it lands in the *output*.
    """

    def matrices(self, n: int, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """N × 3 × 3 forward maps, identity for images not chosen (probability 1 − p)."""
        A = self._matrices(n, x, generator)
        mask = _chosen(n, self.p, x, generator)
        if mask is not None:
            eye = torch.eye(3, device=x.device, dtype=x.dtype).expand(n, 3, 3)
            A = torch.where(mask[:, None, None], A, eye)
        return A

    def _matrices(self, n, x, generator) -> torch.Tensor:
        raise NotImplementedError

    def _apply(self, x, generator):
        return warp(x, self.matrices(x.shape[0], x, generator))


def warp(x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """Resample each image of ``x`` (N × C × H × W) under its forward affine map ``A`` (N × 3 × 3).

    ``affine_grid`` wants the inverse map (output pixel → input location), so we invert the
    batch of matrices once; pixels that come from outside the image are black (zero).
    """
    if A.shape != (x.shape[0], 3, 3):
        raise ValueError(f"need one 3×3 matrix per image: {x.shape[0]}×3×3, got {tuple(A.shape)}")
    theta = torch.linalg.inv(A)[:, :2, :]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _affine(a, b, c, d, tx, ty) -> torch.Tensor:
    """Stack per-image entries into N × 3 × 3 matrices [[a, b, tx], [c, d, ty], [0, 0, 1]]."""
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    rows = [torch.stack([a, b, tx], -1), torch.stack([c, d, ty], -1), torch.stack([zero, zero, one], -1)]
    return torch.stack(rows, -2)


class Rotation(AffineAugmentation):
    """Rotate each image about its centre by an angle drawn from U(−degrees, degrees).

    ``degrees`` is a number (symmetric range) or a (low, high) pair in degrees.
    """

    def __init__(self, degrees: float | Sequence[float] = 25.0, p: float = 1.0):
        self.degrees = _range(degrees, "degrees", low_bound=-180, high_bound=180)
        self.p = _check_p(p)

    def _matrices(self, n, x, generator):
        angle = _uniform(n, *self.degrees, x, generator) * (math.pi / 180)
        cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
        return _affine(cos, -sin, sin, cos, zero, zero)


class Skew(AffineAugmentation):
    """A random affine distortion: shear in x and y, and a different scale along each axis.

    Each image gets shears k_x, k_y ~ U(−shear, shear) and scales s_x, s_y ~ U(1 − stretch,
    1 + stretch): the map is [[s_x, k_x], [k_y, s_y]]. Slanted and squashed handwriting.
    """

    def __init__(self, shear: float = 0.3, stretch: float = 0.15, p: float = 1.0):
        if shear < 0 or not 0 <= stretch < 1:
            raise ValueError(f"need shear ≥ 0 and 0 ≤ stretch < 1, got shear={shear}, stretch={stretch}")
        self.shear, self.stretch, self.p = float(shear), float(stretch), _check_p(p)

    def _matrices(self, n, x, generator):
        kx, ky = (_uniform(n, -self.shear, self.shear, x, generator) for _ in range(2))
        sx, sy = (_uniform(n, 1 - self.stretch, 1 + self.stretch, x, generator) for _ in range(2))
        zero = torch.zeros_like(kx)
        return _affine(sx, kx, ky, sy, zero, zero)


class CropResize(AffineAugmentation):
    """Cut a random square window and resize it back to the full image.

    The window's side is a fraction ``scale`` ~ U(low, high) of the image side and its centre is
    uniform over the positions that keep it inside the image. Zooms in and shifts; with IIC on
    MNIST, Ji et al. (2019) crop 20 of 28 pixels, a fraction of about 0.71.
    """

    def __init__(self, scale: float | Sequence[float] = (0.7, 1.0), p: float = 1.0):
        if isinstance(scale, (int, float)):
            scale = (float(scale), float(scale))
        self.scale = _range(scale, "scale", symmetric=False)
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"scale must lie in (0, 1], got {self.scale}")
        self.p = _check_p(p)

    def _matrices(self, n, x, generator):
        s = _uniform(n, *self.scale, x, generator)
        # the window [c − s, c + s] must stay inside [−1, 1]: |c| ≤ 1 − s
        cx = (1 - s) * _uniform(n, -1.0, 1.0, x, generator)
        cy = (1 - s) * _uniform(n, -1.0, 1.0, x, generator)
        zero = torch.zeros_like(s)
        return _affine(1 / s, zero, zero, 1 / s, -cx / s, -cy / s)


class Binarize(Augmentation):
    """Threshold each image at its own level t ~ U(low, high): pixels become 0 or 1.

    Strokes lose their anti-aliased grey edges; a high threshold thins them, a low one thickens.
    """

    def __init__(self, threshold: float | Sequence[float] = (0.2, 0.7), p: float = 1.0):
        if isinstance(threshold, (int, float)):
            threshold = (float(threshold), float(threshold))
        self.threshold = _range(threshold, "threshold", symmetric=False, low_bound=0, high_bound=1)
        self.p = _check_p(p)

    def _apply(self, x, generator):
        n = x.shape[0]
        t = _uniform(n, *self.threshold, x, generator).view(n, 1, 1, 1)
        out = (x > t).to(x.dtype)
        mask = _chosen(n, self.p, x, generator)
        return out if mask is None else torch.where(mask.view(n, 1, 1, 1), out, x)


class Noise(Augmentation):
    """Add Gaussian noise of standard deviation σ ~ U(0, std) per image, then clip to [0, 1]."""

    def __init__(self, std: float | Sequence[float] = 0.3, p: float = 1.0):
        self.std = _range(std, "std", symmetric=False, low_bound=0)
        self.p = _check_p(p)

    def _apply(self, x, generator):
        n = x.shape[0]
        sigma = _uniform(n, *self.std, x, generator).view(n, 1, 1, 1)
        eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        out = (x + sigma * eps).clamp_(0.0, 1.0)
        mask = _chosen(n, self.p, x, generator)
        return out if mask is None else torch.where(mask.view(n, 1, 1, 1), out, x)


class Compose(Augmentation):
    """Apply augmentations in order; runs of consecutive affine ones are fused into one warp.

    ``Compose(Rotation(), Skew(), Noise())`` rotates, skews (one ``grid_sample`` for both) and
    then adds noise.
    """

    def __init__(self, *augmentations: Augmentation):
        flat: list[Augmentation] = []
        for a in augmentations:
            if not isinstance(a, Augmentation):
                raise ValueError(f"Compose takes Augmentation objects, got {a!r}")
            flat.extend(a.augmentations if isinstance(a, Compose) else [a])
        self.augmentations = flat

    def _apply(self, x, generator):
        n, pending = x.shape[0], None
        for a in self.augmentations:
            if isinstance(a, AffineAugmentation):
                A = a.matrices(n, x, generator)
                pending = A if pending is None else A @ pending  # later maps act after earlier ones
                continue
            if pending is not None:
                x, pending = warp(x, pending), None
            x = a._apply(x, generator)
        if pending is not None:
            x = warp(x, pending)
        return x if self.augmentations else x.clone()

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(map(repr, self.augmentations)) + ")"


# ---------------------------------------------------------------------------------------------
# named recipes (what the chapter's gallery and ablations use)

NAMES = ("rotation", "skew", "binarize", "noise", "crop", "all")


def named(name: str) -> Augmentation:
    """One of the chapter's recipes by name: a single augmentation, or ``"all"`` combined.

    ``"all"`` crops, rotates and skews (one fused warp), then binarises half of the images and
    adds noise to half of them, each image choosing independently.
    """
    recipes = {
        "rotation": lambda: Rotation(25.0),
        "skew": lambda: Skew(0.3, 0.15),
        "binarize": lambda: Binarize((0.2, 0.7)),
        "noise": lambda: Noise(0.3),
        "crop": lambda: CropResize((0.7, 1.0)),
        "all": lambda: Compose(CropResize((0.7, 1.0)), Rotation(25.0), Skew(0.3, 0.15),
                               Binarize((0.2, 0.7), p=0.5), Noise(0.3, p=0.5)),
    }
    if name not in recipes:
        raise ValueError(f"unknown augmentation {name!r}; choose one of {', '.join(NAMES)}")
    return recipes[name]()
