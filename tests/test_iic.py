import math

import pytest
import torch

from dctutor import augment, data, iic, training


def one_hot(labels, c):
    return torch.nn.functional.one_hot(torch.as_tensor(labels), c).float()


def random_probs(n, c, seed=0, sharp=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(sharp * torch.randn(n, c, generator=g), dim=1)


# ---------------------------------------------------------------------------------------------
# the loss


@pytest.mark.parametrize("c", [2, 3, 10, 50])
def test_loss_at_a_perfect_uniform_diagonal_is_minus_log_c(c):
    z = one_hot(torch.arange(4 * c) % c, c)          # every cluster used equally, twins agree
    assert float(iic.iic_loss(z, z)) == pytest.approx(-math.log(c), rel=1e-4)


@pytest.mark.parametrize("alpha", [1.0, 2.0, 10.0])
def test_alpha_scales_the_marginal_terms(alpha):
    c = 10
    z = one_hot(torch.arange(3 * c) % c, c)
    assert float(iic.iic_loss(z, z, alpha)) == pytest.approx((1 - 2 * alpha) * math.log(c), rel=1e-4)
    p1, p2 = random_probs(64, c, 1), random_probs(64, c, 2)
    P = iic.joint_distribution(p1, p2)
    h_marg = iic.entropy(P.sum(0)) + iic.entropy(P.sum(1))
    expected = iic.entropy(P) - alpha * h_marg
    assert float(iic.iic_loss(p1, p2, alpha)) == pytest.approx(expected, abs=1e-4)


def test_loss_is_minus_mutual_information():
    p1, p2 = random_probs(200, 7, 3), random_probs(200, 7, 4)
    P = iic.joint_distribution(p1, p2)
    assert float(iic.iic_loss(p1, p2)) == pytest.approx(-iic.mutual_information(P), abs=1e-5)


def test_loss_is_bounded_below_and_symmetric():
    for seed in range(20):
        p1, p2 = random_probs(50, 6, seed), random_probs(50, 6, seed + 100)
        loss = float(iic.iic_loss(p1, p2))
        assert -math.log(6) - 1e-5 <= loss <= 1e-6      # 0 ≤ I ≤ ln C
        assert loss == pytest.approx(float(iic.iic_loss(p2, p1)), abs=1e-6)


def test_collapse_and_independence_carry_no_information():
    c = 10
    collapsed = one_hot(torch.zeros(40, dtype=torch.long), c)
    assert float(iic.iic_loss(collapsed, collapsed)) == pytest.approx(0.0, abs=1e-4)
    # ...while plain agreement calls the collapse perfect
    assert float(iic.agreement_loss(collapsed, collapsed)) == pytest.approx(0.0, abs=1e-5)
    uniform = torch.full((40, c), 1 / c)
    assert float(iic.iic_loss(uniform, uniform)) == pytest.approx(0.0, abs=1e-5)


def test_joint_distribution_is_symmetric_and_normalised():
    p1, p2 = random_probs(30, 5, 0), random_probs(30, 5, 1)
    P = iic.joint_distribution(p1, p2)
    assert P.shape == (5, 5)
    assert torch.allclose(P, P.t())
    assert float(P.sum()) == pytest.approx(1.0, abs=1e-6)
    assert float(P.min()) > 0


def test_gradient_is_finite_for_one_hot_inputs():
    logits = torch.tensor([[50.0, -50.0, -50.0]] * 8, requires_grad=True)
    p = torch.softmax(logits, 1)
    iic.iic_loss(p, p.detach().roll(1, 0)).backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("p1,p2,match", [
    (torch.rand(10), torch.rand(10), "N×C"),
    (torch.rand(10, 3), torch.rand(10, 4), "same shape"),
    (torch.rand(10, 3), torch.rand(9, 3), "same shape"),
    (torch.rand(0, 3), torch.rand(0, 3), "empty"),
    (torch.rand(10, 1), torch.rand(10, 1), "at least 2"),
    ([[0.5, 0.5]], [[0.5, 0.5]], "torch.Tensor"),
])
def test_bad_shapes_raise_value_error(p1, p2, match):
    with pytest.raises(ValueError, match=match):
        iic.iic_loss(p1, p2)
    with pytest.raises(ValueError):
        iic.agreement_loss(p1, p2)


def test_entropy_and_mutual_information_examples():
    assert iic.entropy([0.5, 0.5]) == pytest.approx(math.log(2))
    assert iic.entropy([1.0, 0.0]) == 0.0
    assert iic.mutual_information(torch.eye(4) / 4) == pytest.approx(math.log(4))
    assert iic.mutual_information(torch.full((4, 4), 1 / 16)) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        iic.entropy([0.5, 0.6])
    with pytest.raises(ValueError):
        iic.mutual_information(torch.ones(4) / 4)


# ---------------------------------------------------------------------------------------------
# the network and the trainer


def test_network_heads_shapes_and_probabilities():
    net = iic.ClusterNet(channels=(4, 8), k=10, overcluster_k=50)
    x = torch.rand(6, 1, 28, 28)
    main, over = net(x)
    assert main.shape == (6, 10) and over.shape == (6, 50)
    assert torch.allclose(main.sum(1), torch.ones(6)) and torch.allclose(over.sum(1), torch.ones(6))
    assert net.head_names == ("main", "over")
    assert len(net(x.reshape(6, 784))) == 2                      # flat inputs work too
    single = iic.ClusterNet(channels=(4,), k=3, overcluster_k=0)
    assert len(single(x)) == 1 and single.head_names == ("main",)
    kinds = {type(m).__name__ for m in net.modules()}
    assert {"Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"} <= kinds


@pytest.mark.parametrize("kwargs", [dict(channels=()), dict(k=1), dict(overcluster_k=1),
                                    dict(channels=(8, 0)), dict(channels=(4,) * 5)])
def test_network_rejects_bad_sizes(kwargs):
    with pytest.raises(ValueError):
        iic.ClusterNet(**kwargs)


def test_memory_format_does_not_change_the_outputs():
    torch.manual_seed(0)
    net = iic.ClusterNet(channels=(4, 8, 16), k=10, overcluster_k=20).eval()
    x = torch.rand(7, 1, 28, 28)
    before = net(x)
    net.to(memory_format=torch.channels_last)
    after = net(x)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(before, after))


def test_predict_uses_eval_mode_and_restores_it():
    net = iic.ClusterNet(channels=(4, 8), k=10, overcluster_k=20)
    net.train()
    labels = iic.predict(net, torch.rand(25, 784), batch_size=10)
    assert [tuple(l.shape) for l in labels] == [(25,), (25,)]
    assert labels[1].max() < 20 and net.training
    probs = iic.predict(net, torch.rand(5, 784), probabilities=True)
    assert probs[0].shape == (5, 10)


@pytest.fixture(scope="module")
def two_digits():
    d = data.load("mnist-5k", "train")
    keep = (d.labels == 0) | (d.labels == 1)
    return d.images[keep][:300].float().div(255).unsqueeze(1), d.labels[keep][:300]


def test_train_records_history_and_learns_an_easy_split(two_digits):
    X, y = two_digits
    torch.manual_seed(0)
    net = iic.ClusterNet(channels=(8, 16), k=2, overcluster_k=6)
    h = iic.train(net, X, y, augmentation=augment.named("all"), num_epochs=4, batch_size=100,
                  lr=3e-3, alpha=1.0, eval_every=2, progress=False)
    assert h["epoch"] == [1, 2, 3, 4] and h["eval_epoch"] == [2, 4]
    for key in ("loss", "loss_main", "loss_over", "seconds"):
        assert len(h[key]) == 4 and all(math.isfinite(v) for v in h[key])
    assert all(-math.log(2) - 1e-4 <= v <= 1e-4 for v in h["loss_main"])
    P = torch.tensor(h["P"][-1])
    assert P.shape == (2, 2) and float(P.sum()) == pytest.approx(1, abs=1e-5)
    assert len(h["nmi_over"]) == 2 and len(h["cluster_sizes"][-1]) == 2
    # zeros against ones: IIC separates them within a few epochs
    assert h["acc"][-1] > 0.9
    assert h["loss_main"][-1] < h["loss_main"][0]


def test_train_is_reproducible_with_a_seed(two_digits):
    X, _ = two_digits

    def run():
        torch.manual_seed(1)
        net = iic.ClusterNet(channels=(4, 8), k=2, overcluster_k=0)
        return iic.train(net, X[:100], augmentation=augment.named("all"), num_epochs=2,
                         batch_size=50, lr=1e-3, seed=5, progress=False)

    a, b = run(), run()
    assert a["loss"] == b["loss"] and a["P"] == b["P"]
    assert "acc" not in a                                          # no labels, no scores


def test_train_raises_when_the_loss_diverges(two_digits):
    X, _ = two_digits
    net = iic.ClusterNet(channels=(4,), k=2, overcluster_k=0)
    with pytest.raises(training.TrainingDiverged):
        iic.train(net, X[:40], augmentation=augment.Identity(), num_epochs=1, batch_size=20,
                  lr=1e-3, loss_fn=lambda p1, p2: (p1 * float("nan")).sum(), progress=False)


def test_train_accepts_another_loss_and_checks_arguments(two_digits):
    X, y = two_digits
    net = iic.ClusterNet(channels=(4,), k=2, overcluster_k=0)
    h = iic.train(net, X[:40], y[:40], augmentation=augment.Noise(0.1), num_epochs=1,
                  batch_size=20, lr=1e-3, loss_fn=iic.agreement_loss, progress=False)
    assert len(h["acc"]) == 1
    for bad in (dict(num_epochs=0), dict(batch_size=0), dict(lr=0.0), dict(repeats=0),
                dict(eval_every=-1)):
        kwargs = dict(augmentation=augment.Noise(0.1), num_epochs=1, batch_size=20, lr=1e-3,
                      progress=False) | bad
        with pytest.raises(ValueError):
            iic.train(net, X[:40], **kwargs)
    with pytest.raises(ValueError, match="labels"):
        iic.train(net, X[:40], y[:30], augmentation=augment.Noise(0.1), num_epochs=1,
                  batch_size=20, lr=1e-3, progress=False)
