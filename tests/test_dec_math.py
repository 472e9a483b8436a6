"""The mathematics of DEC (chapter 3): soft assignment, target, KL loss and its hand gradient."""

import math

import pytest
import torch

from dctutor import dec

ALPHAS = [0.25, 1.0, 2.0, 10.0, 100.0]


def random_problem(n=40, d=3, k=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g, dtype=dtype)
    centers = 1.5 * torch.randn(k, d, generator=g, dtype=dtype)
    # any target whose rows are distributions will do; take one unrelated to z
    p = torch.softmax(2 * torch.randn(n, k, generator=g, dtype=dtype), dim=1)
    return z, centers, p


def entropy(rows):
    return -torch.xlogy(rows, rows).sum(dim=1)


# --- soft_assign -------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha", ALPHAS)
def test_soft_assign_matches_the_formula(alpha):
    z, centers, _ = random_problem()
    kernel = (1 + torch.cdist(z, centers) ** 2 / alpha) ** (-(alpha + 1) / 2)
    expected = kernel / kernel.sum(dim=1, keepdim=True)
    q = dec.soft_assign(z, centers, alpha)
    assert q.shape == (40, 4)
    torch.testing.assert_close(q, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(q.sum(dim=1), torch.ones(40, dtype=q.dtype))


def test_soft_assign_prefers_the_nearest_centre_and_is_translation_invariant():
    z, centers, _ = random_problem()
    q = dec.soft_assign(z, centers)
    assert torch.equal(q.argmax(dim=1), torch.cdist(z, centers).argmin(dim=1))
    shift = torch.tensor([3.0, -1.0, 0.5], dtype=z.dtype)
    torch.testing.assert_close(dec.soft_assign(z + shift, centers + shift), q)


def test_soft_assign_far_points_do_not_underflow():
    z = torch.tensor([[1e4, 0.0]])
    centers = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    q = dec.soft_assign(z, centers, alpha=50.0)
    assert torch.isfinite(q).all() and abs(q.sum().item() - 1) < 1e-6


def test_large_alpha_approaches_a_gaussian_kernel():
    z, centers, _ = random_problem()
    gaussian = torch.softmax(-torch.cdist(z, centers) ** 2 / 2, dim=1)
    assert (dec.soft_assign(z, centers, alpha=1e6) - gaussian).abs().max() < 1e-4


# --- target_distribution -----------------------------------------------------------------------

def test_target_matches_the_formula_and_rows_sum_to_one():
    z, centers, _ = random_problem()
    q = dec.soft_assign(z, centers)
    weight = q ** 2 / q.sum(dim=0)
    p = dec.target_distribution(q)
    torch.testing.assert_close(p, weight / weight.sum(dim=1, keepdim=True))
    torch.testing.assert_close(p.sum(dim=1), torch.ones(len(p), dtype=p.dtype))


def test_target_is_sharper_than_q():
    z, centers, _ = random_problem(n=200, seed=3)
    q = dec.soft_assign(z, centers)
    assert entropy(dec.target_distribution(q)).mean() < entropy(q).mean()


def test_target_with_equal_frequencies_is_just_q_squared():
    q = torch.tensor([[0.5, 0.3, 0.2], [0.2, 0.5, 0.3], [0.3, 0.2, 0.5]], dtype=torch.float64)
    p = dec.target_distribution(q)
    torch.testing.assert_close(p, q ** 2 / (q ** 2).sum(dim=1, keepdim=True))


def test_frequency_term_moves_a_boundary_point_towards_the_small_cluster():
    # 9 points sure of cluster 0, one undecided point slightly preferring cluster 0
    q = torch.tensor([[0.99, 0.01]] * 9 + [[0.55, 0.45]], dtype=torch.float64)
    p = dec.target_distribution(q)
    assert p[-1, 1] > 0.5 > q[-1, 1]


def test_squared_target_keeps_preferences_but_lets_the_big_cluster_grow():
    # chapter 3's contrast: q² alone sharpens every row and never moves a point to another
    # cluster; DEC's 1/f moves the undecided point to the small cluster, q² alone does not
    q = torch.tensor([[0.99, 0.01]] * 9 + [[0.55, 0.45]], dtype=torch.float64)
    p_sq = dec.squared_target(q)
    torch.testing.assert_close(p_sq.sum(dim=1), torch.ones(10, dtype=torch.float64))
    assert torch.equal(p_sq.argmax(dim=1), q.argmax(dim=1))
    assert (entropy(p_sq) < entropy(q)).all()
    assert dec.cluster_shares(p_sq)[0] > dec.cluster_shares(q)[0]
    assert dec.target_distribution(q)[-1].argmax() == 1 != p_sq[-1].argmax()
    with pytest.raises(ValueError, match="probability distributions"):
        dec.squared_target(torch.tensor([[0.5, 0.6]]))


def test_cluster_shares_and_preferred_counts():
    q = torch.tensor([[0.9, 0.1, 0.0], [0.6, 0.4, 0.0], [0.2, 0.7, 0.1]], dtype=torch.float64)
    torch.testing.assert_close(dec.cluster_shares(q),
                               torch.tensor([1.7, 1.2, 0.1], dtype=torch.float64) / 3)
    counts = dec.preferred_counts(q)
    assert counts.tolist() == [2, 1, 0] and counts.dtype == torch.int64   # an empty cluster too
    with pytest.raises(ValueError, match="N × K"):
        dec.preferred_counts(torch.ones(3))


# --- kl_loss -----------------------------------------------------------------------------------

def test_kl_loss_matches_the_formula_and_vanishes_at_p_equal_q():
    z, centers, p = random_problem()
    q = dec.soft_assign(z, centers)
    expected = (p * (p / q).log()).sum() / len(p)
    torch.testing.assert_close(dec.kl_loss(q, p), expected)
    assert dec.kl_loss(q, p) > 0
    assert abs(dec.kl_loss(q, q).item()) < 1e-12


def test_kl_loss_is_an_average_over_points():
    z, centers, p = random_problem()
    q = dec.soft_assign(z, centers)
    doubled = dec.kl_loss(torch.cat([q, q]), torch.cat([p, p]))
    torch.testing.assert_close(doubled, dec.kl_loss(q, p))


def test_kl_loss_handles_zeros_in_p():
    q = torch.tensor([[0.5, 0.5], [0.2, 0.8]])
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    expected = (math.log(2) + math.log(1 / 0.8)) / 2
    assert dec.kl_loss(q, p).item() == pytest.approx(expected, rel=1e-6)


def test_no_gradient_flows_into_p():
    z, centers, p = random_problem()
    z.requires_grad_(True)
    p = p.clone().requires_grad_(True)
    dec.kl_loss(dec.soft_assign(z, centers), p).backward()
    assert p.grad is None and z.grad is not None


# --- the hand-derived gradient -----------------------------------------------------------------

@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("seed", range(3))
def test_hand_gradient_matches_autograd(alpha, seed):
    z, centers, p = random_problem(seed=seed)
    z.requires_grad_(True), centers.requires_grad_(True)
    loss = dec.kl_loss(dec.soft_assign(z, centers, alpha), p)
    auto_z, auto_c = torch.autograd.grad(loss, (z, centers))
    hand_z, hand_c = dec.kl_gradients(z.detach(), centers.detach(), p, alpha)
    torch.testing.assert_close(hand_z, auto_z, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(hand_c, auto_c, rtol=1e-10, atol=1e-14)


def test_hand_gradient_with_the_target_of_q_itself():
    # the DEC situation: p is the (detached) target computed from the same q
    z, centers, _ = random_problem(n=100, seed=5)
    p = dec.target_distribution(dec.soft_assign(z, centers))
    z.requires_grad_(True), centers.requires_grad_(True)
    auto = torch.autograd.grad(dec.kl_loss(dec.soft_assign(z, centers), p), (z, centers))
    hand = dec.kl_gradients(z.detach(), centers.detach(), p)
    for h, a in zip(hand, auto):
        torch.testing.assert_close(h, a, rtol=1e-10, atol=1e-14)


def test_gradients_sum_to_zero_by_translation_invariance():
    z, centers, p = random_problem()
    grad_z, grad_c = dec.kl_gradients(z, centers, p, alpha=2.0)
    total = grad_z.sum(dim=0) + grad_c.sum(dim=0)
    assert total.abs().max() < 1e-14


def test_hand_gradient_in_float32():
    z, centers, p = random_problem(dtype=torch.float32)
    z.requires_grad_(True), centers.requires_grad_(True)
    auto = torch.autograd.grad(dec.kl_loss(dec.soft_assign(z, centers), p), (z, centers))
    hand = dec.kl_gradients(z.detach(), centers.detach(), p)
    for h, a in zip(hand, auto):
        assert h.dtype == torch.float32
        torch.testing.assert_close(h, a, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 3.0])
def test_autograd_function_passes_gradcheck(alpha):
    z, centers, p = random_problem(n=12, d=2, k=3, seed=1)
    z.requires_grad_(True), centers.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z, c: dec.kl_loss_hand(z, c, p, alpha), (z, centers))


def test_autograd_function_agrees_with_autograd_and_leaves_p_alone():
    z, centers, p = random_problem()
    z.requires_grad_(True), centers.requires_grad_(True)
    p = p.clone().requires_grad_(True)
    loss = dec.kl_loss_hand(z, centers, p)
    torch.testing.assert_close(loss, dec.kl_loss(dec.soft_assign(z, centers), p))
    hand = torch.autograd.grad(loss, (z, centers))
    auto = torch.autograd.grad(dec.kl_loss(dec.soft_assign(z, centers), p), (z, centers))
    for h, a in zip(hand, auto):
        torch.testing.assert_close(h, a)
    loss = dec.kl_loss_hand(z, centers, p)
    loss.backward()
    assert p.grad is None


def test_hand_gradient_drives_gradient_descent_downhill():
    z, centers, _ = random_problem(n=60, seed=2)
    z.requires_grad_(True), centers.requires_grad_(True)
    p = dec.target_distribution(dec.soft_assign(z, centers).detach())
    opt = torch.optim.SGD([z, centers], lr=20.0)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = dec.kl_loss_hand(z, centers, p)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# --- bad input ---------------------------------------------------------------------------------

def test_mismatched_feature_sizes_raise():
    with pytest.raises(ValueError, match="features"):
        dec.soft_assign(torch.randn(5, 3), torch.randn(2, 4))
    with pytest.raises(ValueError, match="features"):
        dec.kl_gradients(torch.randn(5, 3), torch.randn(2, 4), torch.full((5, 2), 0.5))


def test_wrong_dimensions_raise():
    with pytest.raises(ValueError, match="N × d"):
        dec.soft_assign(torch.randn(5), torch.randn(2, 5))
    with pytest.raises(ValueError, match="N × K"):
        dec.target_distribution(torch.full((4,), 0.25))


@pytest.mark.parametrize("alpha", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_alpha_raises(alpha):
    z, centers, p = random_problem()
    with pytest.raises(ValueError, match="alpha"):
        dec.soft_assign(z, centers, alpha)
    with pytest.raises(ValueError, match="alpha"):
        dec.kl_gradients(z, centers, p, alpha)
    with pytest.raises(ValueError, match="alpha"):
        dec.kl_loss_hand(z, centers, p, alpha)


@pytest.mark.parametrize("bad", [
    torch.tensor([[0.5, 0.6], [0.5, 0.5]]),        # a row sums to 1.1
    torch.tensor([[1.2, -0.2], [0.5, 0.5]]),       # a negative entry
    torch.tensor([[float("nan"), 1.0], [0.5, 0.5]]),
    torch.tensor([[2.0, 3.0], [1.0, 1.0]]),        # scores, not probabilities
])
def test_rows_that_are_not_distributions_raise(bad):
    good = torch.full((2, 2), 0.5)
    with pytest.raises(ValueError, match="distributions"):
        dec.target_distribution(bad)
    with pytest.raises(ValueError, match="distributions"):
        dec.kl_loss(bad, good)
    with pytest.raises(ValueError, match="distributions"):
        dec.kl_loss(good, bad)
    with pytest.raises(ValueError, match="distributions"):
        dec.kl_gradients(torch.randn(2, 3), torch.randn(2, 3), bad)


def test_check_false_skips_only_the_value_check():
    unnormalised = torch.tensor([[2.0, 3.0], [1.0, 1.0]])
    dec.target_distribution(unnormalised, check=False)  # no error: the caller vouched for it
    with pytest.raises(ValueError, match="N × K"):
        dec.kl_loss(torch.ones(3), torch.ones(3), check=False)


def test_shape_mismatch_between_p_and_q_or_points_raises():
    with pytest.raises(ValueError, match="same shape"):
        dec.kl_loss(torch.full((3, 2), 0.5), torch.full((3, 4), 0.25))
    with pytest.raises(ValueError, match="N × K"):
        dec.kl_gradients(torch.randn(5, 2), torch.randn(3, 2), torch.full((5, 2), 0.5))


def test_hand_loss_without_checks_gives_the_same_value_and_gradient():
    z, centers, p = random_problem()
    z.requires_grad_(True)
    checked = dec.kl_loss_hand(z, centers, p)
    unchecked = dec.kl_loss_hand(z, centers, p, check=False)
    torch.testing.assert_close(checked, unchecked)
    g1, = torch.autograd.grad(checked, z)
    g2, = torch.autograd.grad(unchecked, z)
    torch.testing.assert_close(g1, g2)
    with pytest.raises(ValueError, match="distributions"):
        dec.kl_loss_hand(z, centers, 2 * p)


def test_embedding_geometry_scales_with_the_embedding():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(200, 3, generator=g)
    centers = torch.randn(4, 3, generator=g)
    geo = dec.embedding_geometry(z, centers)
    assert set(geo) == {"embedding_spread", "centre_spread", "centre_ratio"}
    expected = (z - z.mean(0)).pow(2).sum(1).mean().sqrt()
    assert torch.isclose(geo["embedding_spread"], expected)
    pairs = [torch.dist(centers[a], centers[b]) for a in range(4) for b in range(4) if a != b]
    assert torch.isclose(geo["centre_spread"], torch.stack(pairs).mean())
    # scaling points and centres together scales the spreads and keeps the ratio
    scaled = dec.embedding_geometry(10 * z, 10 * centers)
    assert torch.isclose(scaled["embedding_spread"], 10 * geo["embedding_spread"])
    assert torch.isclose(scaled["centre_ratio"], geo["centre_ratio"])
    # an embedding shrunk to a point has no spread
    assert dec.embedding_geometry(torch.zeros(5, 3), centers)["embedding_spread"] == 0
    with pytest.raises(ValueError, match="same space"):
        dec.embedding_geometry(z, torch.zeros(4, 2))
