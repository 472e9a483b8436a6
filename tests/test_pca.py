import math

import numpy as np
import pytest
import scipy.linalg
import torch
from sklearn.decomposition import PCA as SkPCA

from dctutor import data
from dctutor.pca import PCA, principal_angles


def low_rank_data(n=300, d=20, rank=4, noise=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    scales = torch.linspace(3.0, 1.0, rank)
    Z = torch.randn(n, rank, generator=g) * scales
    W = torch.linalg.qr(torch.randn(d, rank, generator=g))[0]
    return Z @ W.T + noise * torch.randn(n, d, generator=g) + 0.5


def test_matches_scikit_learn():
    X = low_rank_data()
    ours = PCA(5).fit(X)
    ref = SkPCA(5, svd_solver="full").fit(X.double().numpy())
    signs = np.sign((ours.components_.double().numpy() * ref.components_).sum(axis=1))
    np.testing.assert_allclose(ours.components_.numpy(), signs[:, None] * ref.components_, atol=1e-4)
    np.testing.assert_allclose(ours.explained_variance_.numpy(), ref.explained_variance_, rtol=1e-4)
    np.testing.assert_allclose(ours.explained_variance_ratio_.numpy(),
                               ref.explained_variance_ratio_, rtol=1e-4)
    np.testing.assert_allclose(ours.transform(X).numpy(),
                               ref.transform(X.double().numpy()) * signs, atol=1e-4)


def test_components_are_orthonormal_and_signs_deterministic():
    X = low_rank_data()
    a = PCA(6).fit(X)
    b = PCA(6).fit(X[torch.randperm(len(X), generator=torch.Generator().manual_seed(1))])
    V = a.components_
    torch.testing.assert_close(V @ V.T, torch.eye(6), atol=1e-5, rtol=0)
    torch.testing.assert_close(a.components_, b.components_, atol=1e-4, rtol=0)
    assert torch.all(a.explained_variance_[:-1] >= a.explained_variance_[1:])


def test_all_components_reconstruct_exactly():
    X = low_rank_data(n=50, d=10)
    pca = PCA().fit(X)
    assert pca.components_.shape == (10, 10)
    torch.testing.assert_close(pca.reconstruct(X), X, atol=1e-5, rtol=0)
    assert pca.explained_variance_ratio_.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_error_curve_equals_brute_force_reconstruction():
    X, X_new = low_rank_data(seed=0), low_rank_data(seed=1)
    pca = PCA(8).fit(X)
    curve = pca.error_curve(X_new)
    assert curve.shape == (9,)
    for k in range(9):
        brute = ((pca.reconstruct(X_new, k) - X_new) ** 2).mean().item()
        assert curve[k].item() == pytest.approx(brute, rel=1e-4, abs=1e-7)
    # k = 0 reconstructs every point by the training mean
    assert curve[0].item() == pytest.approx(((X_new - X.mean(0)) ** 2).mean().item(), rel=1e-5)
    assert torch.all(curve[1:] <= curve[:-1] + 1e-7)  # more directions never hurt
    assert pca.reconstruction_error(X_new, 3) == pytest.approx(curve[3].item(), rel=1e-6)


def test_training_error_is_the_variance_left_out():
    X = low_rank_data()
    n, d = X.shape
    pca = PCA().fit(X)
    curve = pca.error_curve(X)
    left_out = pca.explained_variance_.flip(0).cumsum(0).flip(0) * (n - 1) / (n * d)
    # float32: the two sides are computed differently, so they agree to a few rounding errors of
    # the largest value (the tail of the curve is pure rounding noise at this scale)
    tiny = 8 * torch.finfo(torch.float32).eps * float(curve[0])
    torch.testing.assert_close(curve[:-1], left_out, rtol=1e-4, atol=tiny)
    assert pca.total_variance_ == pytest.approx(X.var(dim=0).sum().item(), rel=1e-5)


def test_components_for_error():
    X = low_rank_data()
    pca = PCA(10).fit(X)
    curve = pca.error_curve(X)
    assert pca.components_for_error(X, curve[3].item()) == 3
    assert pca.components_for_error(X, curve[3].item() * 1.0001) == 3
    assert pca.components_for_error(X, -1.0) is None


def test_inverse_transform_uses_the_codes_width():
    X = low_rank_data()
    pca = PCA(5).fit(X)
    Z = pca.transform(X, 2)
    assert Z.shape == (len(X), 2)
    torch.testing.assert_close(pca.inverse_transform(Z), pca.reconstruct(X, 2))


def test_bad_input_is_a_clear_error():
    X = low_rank_data(n=30, d=8)
    with pytest.raises(ValueError, match="not fitted"):
        PCA(2).transform(X)
    with pytest.raises(ValueError, match="positive integer"):
        PCA(0)
    with pytest.raises(ValueError, match="at most 8"):
        PCA(9).fit(X)
    with pytest.raises(ValueError, match="2-D"):
        PCA(2).fit(X[0])
    with pytest.raises(ValueError, match="floats"):
        PCA(2).fit(torch.ones(5, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="empty"):
        PCA(2).fit(X[:0])
    pca = PCA(3).fit(X)
    with pytest.raises(ValueError, match="8"):
        pca.transform(torch.rand(4, 7))
    with pytest.raises(ValueError, match="0..3"):
        pca.error_curve(X, 4)
    with pytest.raises(ValueError, match="0..3"):
        pca.inverse_transform(torch.zeros(2, 5))


def test_principal_angles_match_scipy():
    g = torch.Generator().manual_seed(0)
    A, B = torch.randn(40, 3, generator=g), torch.randn(40, 5, generator=g)
    ours = principal_angles(A, B).numpy()
    ref = np.sort(scipy.linalg.subspace_angles(A.double().numpy(), B.double().numpy()))
    np.testing.assert_allclose(ours, ref, atol=1e-10)


def test_principal_angles_of_related_subspaces():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(30, 3, generator=g)
    # the same subspace in another (non-orthogonal) basis: all angles zero, even tiny ones resolved
    same = principal_angles(A, A @ torch.randn(3, 3, generator=g))
    assert same.max().item() < 1e-6
    tilted = A @ torch.randn(3, 3, generator=g) + 1e-5 * torch.randn(30, 3, generator=g)
    assert 1e-7 < principal_angles(A, tilted).max().item() < 1e-3
    e = torch.eye(4)
    angles = principal_angles(e[:, :2], e[:, 2:])
    torch.testing.assert_close(angles, torch.full((2,), math.pi / 2, dtype=angles.dtype))
    with pytest.raises(ValueError, match="same space"):
        principal_angles(torch.randn(5, 2), torch.randn(6, 2))
    with pytest.raises(ValueError, match="2-D"):
        principal_angles(torch.randn(5), torch.randn(5, 2))


def test_mnist_sample_numbers():
    # The embedded sample: the held-out error of two components is near the source's 0.056.
    X = data.load("mnist-5k", "train").inputs()
    X_test = data.load("mnist-5k", "test").inputs()
    pca = PCA(10).fit(X)
    curve = pca.error_curve(X_test)
    assert 0.05 < curve[2].item() < 0.065
    assert torch.all(curve[1:] < curve[:-1])
    assert pca.explained_variance_ratio_[0].item() == pytest.approx(0.1, abs=0.02)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_stays_on_the_gpu():
    X = low_rank_data().cuda()
    pca = PCA(4).fit(X)
    assert pca.components_.device.type == "cuda" and pca.error_curve(X).device.type == "cuda"
    cpu = PCA(4).fit(X.cpu())
    assert pca.reconstruction_error(X, 2) == pytest.approx(cpu.reconstruction_error(X.cpu(), 2),
                                                           rel=1e-4)
