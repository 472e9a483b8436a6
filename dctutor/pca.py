"""Principal component analysis by the SVD of the centred data, in torch (chapter 1).

With the training data ``X`` (N × D) centred, ``Xc = X - mean``, its thin SVD
``Xc = U diag(s) Vᵀ`` gives everything PCA needs:

* the principal directions are the rows of ``Vᵀ`` (unit vectors, orthogonal), sorted by
  singular value;
* the variance along direction ``j`` is ``s_j² / (N - 1)``;
* the code of a point is its projection ``(x - mean) V_k`` and its reconstruction is
  ``mean + code V_kᵀ``; no rank-k affine map reconstructs the training data with a smaller
  squared error (Eckart–Young).

Because the directions are orthonormal, the squared residual of one point after keeping k
components is ``‖x - mean‖² - Σ_{j≤k} z_j²``: one projection onto the first K directions gives
the reconstruction error for *every* k ≤ K (:meth:`PCA.error_curve`).

Errors are mean squared errors **per input unit** (per pixel for images in [0, 1]), the units
the autoencoders in :mod:`dctutor.autoencoders` report. Everything stays on the data's device.
"""

from __future__ import annotations

import torch


def _check_matrix(X, what: str = "X", n_features: int | None = None) -> None:
    if not isinstance(X, torch.Tensor):
        raise ValueError(f"{what} must be a torch.Tensor (N × D), got {type(X).__name__}")
    if X.dim() != 2:
        raise ValueError(f"{what} must be a 2-D tensor N × D, got shape {tuple(X.shape)}")
    if X.shape[0] == 0:
        raise ValueError(f"{what} is empty")
    if not X.is_floating_point():
        raise ValueError(f"{what} must hold floats (inputs in [0, 1]), got dtype {X.dtype}")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{what} has {X.shape[1]} features but the PCA was fitted on {n_features}")


def _accumulator_dtype(device: torch.device) -> torch.dtype:
    # float64 for sums of squares where the device has it (Apple's MPS does not).
    return torch.float32 if device.type == "mps" else torch.float64


class PCA:
    """PCA with ``n_components`` directions, fitted by the SVD of the centred data.

    Args:
        n_components: how many directions to keep (default: all, ``min(N, D)``).

    Attributes after :meth:`fit` (tensors on the data's device):
        mean_: D, the training mean.
        components_: n_components × D, the principal directions as orthonormal rows, sorted by
            variance; each row's sign is fixed so that its largest-magnitude entry is positive.
        singular_values_: n_components.
        explained_variance_: n_components, the variance ``s² / (N - 1)`` along each direction.
        explained_variance_ratio_: n_components, that variance as a fraction of the total.
        total_variance_: float, the sum of the variances of all D input units.
        n_samples_, n_features_: the training data's shape.

    >>> X = torch.rand(100, 5)
    >>> pca = PCA(2).fit(X)
    >>> pca.inverse_transform(pca.transform(X)).shape
    torch.Size([100, 5])
    """

    def __init__(self, n_components: int | None = None):
        if n_components is not None and (not isinstance(n_components, int)
                                         or isinstance(n_components, bool) or n_components < 1):
            raise ValueError(f"n_components must be a positive integer or None, got {n_components!r}")
        self.n_components = n_components

    # -- fitting ---------------------------------------------------------------------------

    @torch.no_grad()
    def fit(self, X: torch.Tensor) -> "PCA":
        """Fit on ``X`` (N × D floats); returns ``self``."""
        _check_matrix(X)
        n, d = X.shape
        k = self.n_components if self.n_components is not None else min(n, d)
        if k > min(n, d):
            raise ValueError(f"n_components={k} but X ({n} × {d}) has at most {min(n, d)} "
                             "principal directions")
        self.mean_ = X.mean(dim=0)
        Xc = X - self.mean_
        if X.device.type == "mps":  # no SVD on Apple's MPS backend: compute it on the CPU
            _, s, Vh = (t.to(X.device) for t in torch.linalg.svd(Xc.cpu(), full_matrices=False))
        else:
            _, s, Vh = torch.linalg.svd(Xc, full_matrices=False)
        # A deterministic sign for each direction (the SVD only fixes it up to ±1).
        biggest = Vh.abs().argmax(dim=1)
        signs = torch.sign(Vh.gather(1, biggest[:, None]))
        signs[signs == 0] = 1
        Vh = Vh * signs
        acc = _accumulator_dtype(X.device)
        variance = s.to(acc) ** 2 / max(n - 1, 1)
        total = variance.sum()
        self.components_ = Vh[:k].contiguous()
        self.singular_values_ = s[:k]
        self.explained_variance_ = variance[:k].to(X.dtype)
        self.explained_variance_ratio_ = (variance[:k] / total).to(X.dtype)
        self.total_variance_ = float(total)
        self.n_samples_, self.n_features_ = n, d
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise ValueError("this PCA is not fitted yet: call fit(X) first")

    def _directions(self, k: int | None) -> torch.Tensor:
        self._check_fitted()
        kept = self.components_.shape[0]
        k = kept if k is None else k
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= kept:
            raise ValueError(f"k must be an integer in 0..{kept} (the directions kept), got {k!r}")
        return self.components_[:k]

    # -- encoding and decoding -------------------------------------------------------------

    @torch.no_grad()
    def transform(self, X: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """The codes of ``X``: N × D → N × k (default k = n_components), ``(X - mean) V_k``."""
        V = self._directions(k)
        _check_matrix(X, n_features=self.n_features_)
        return (X - self.mean_) @ V.T

    @torch.no_grad()
    def inverse_transform(self, Z: torch.Tensor) -> torch.Tensor:
        """Reconstructions from codes: N × k → N × D, ``mean + Z V_kᵀ`` (k = Z's width)."""
        if not isinstance(Z, torch.Tensor) or Z.dim() != 2:
            shape = tuple(Z.shape) if isinstance(Z, torch.Tensor) else type(Z).__name__
            raise ValueError(f"codes must be a 2-D tensor N × k, got {shape}")
        V = self._directions(Z.shape[1])
        return self.mean_ + Z @ V

    def reconstruct(self, X: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """Project ``X`` onto the first ``k`` directions and map back: N × D → N × D."""
        return self.inverse_transform(self.transform(X, k))

    # -- errors ----------------------------------------------------------------------------

    @torch.no_grad()
    def error_curve(self, X: torch.Tensor, max_k: int | None = None) -> torch.Tensor:
        """Reconstruction error of ``X`` for every k = 0 … max_k, from one projection.

        Returns a float tensor of length ``max_k + 1`` on ``X``'s device: entry ``k`` is the mean
        squared error per input unit after keeping ``k`` directions (entry 0: reconstructing
        every point by the mean). Uses ``‖x - mean‖² - Σ_{j≤k} z_j²``, valid because the
        directions are orthonormal.
        """
        V = self._directions(max_k)
        _check_matrix(X, n_features=self.n_features_)
        acc = _accumulator_dtype(X.device)
        Xc = (X - self.mean_).to(acc)
        Z = Xc @ V.to(acc).T
        captured = torch.cumsum((Z ** 2).sum(dim=0), dim=0)
        total = (Xc ** 2).sum()
        residual = torch.cat([total[None], total - captured]).clamp_min(0)
        return (residual / X.numel()).to(X.dtype)

    def reconstruction_error(self, X: torch.Tensor, k: int | None = None) -> float:
        """Mean squared error per input unit of ``X``'s rank-``k`` reconstruction (a float)."""
        self._check_fitted()
        k = self.components_.shape[0] if k is None else k
        return float(self.error_curve(X, k)[-1])

    def components_for_error(self, X: torch.Tensor, target: float) -> int | None:
        """The smallest k whose error on ``X`` is at most ``target``, or None if no kept k is."""
        curve = self.error_curve(X)
        hits = torch.nonzero(curve <= target).flatten()
        return int(hits[0]) if len(hits) else None

    def __repr__(self) -> str:
        if not hasattr(self, "components_"):
            return f"PCA(n_components={self.n_components}, not fitted)"
        return (f"PCA(n_components={self.components_.shape[0]}, fitted on "
                f"{self.n_samples_} × {self.n_features_}, device={self.mean_.device})")


@torch.no_grad()
def principal_angles(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Principal angles (radians, ascending) between the column spaces of A (D × p) and B (D × q).

    With orthonormal bases ``Qa``, ``Qb`` (by QR), the cosines of the angles are the singular
    values of ``Qaᵀ Qb``. Small angles are taken from the sines instead — the singular values of
    ``Qb - Qa Qaᵀ Qb`` — since ``arccos`` loses them near 1 (the same recipe as
    ``scipy.linalg.subspace_angles``). Returns ``min(p, q)`` angles, on A's device.
    """
    for M, what in ((A, "A"), (B, "B")):
        if not isinstance(M, torch.Tensor) or M.dim() != 2:
            raise ValueError(f"{what} must be a 2-D tensor (D × p) whose columns span a subspace")
    if A.shape[0] != B.shape[0]:
        raise ValueError(f"A and B must live in the same space: {A.shape[0]} vs {B.shape[0]} rows")
    device = A.device
    if device.type == "mps":  # no QR/SVD on Apple's MPS backend: a small problem, use the CPU
        A, B = A.cpu(), B.cpu()
    acc = _accumulator_dtype(A.device)
    Qa, _ = torch.linalg.qr(A.to(acc))
    Qb, _ = torch.linalg.qr(B.to(device=A.device, dtype=acc))
    if Qa.shape[1] < Qb.shape[1]:
        Qa, Qb = Qb, Qa
    cosines = torch.linalg.svdvals(Qa.T @ Qb).clamp(-1, 1)             # largest first
    sines = torch.linalg.svdvals(Qb - Qa @ (Qa.T @ Qb)).clamp(-1, 1).flip(0)  # smallest first
    angles = torch.arccos(cosines)
    small = cosines ** 2 > 0.5
    angles = torch.where(small, torch.arcsin(sines), angles)
    angles = angles.sort().values
    return angles.to(device=device, dtype=_accumulator_dtype(device))
