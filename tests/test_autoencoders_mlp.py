import math

import pytest
import torch
from torch import nn

from dctutor.autoencoders import MLPAutoencoder, encode, reconstruction_error, train_autoencoder
from dctutor.pca import PCA, principal_angles
from dctutor.training import TrainingDiverged


def low_rank_data(n=512, d=24, seed=0, scale=0.2):
    """Points around 0.5 near one 3-D affine subspace (the same for every seed), with well
    separated variances along its directions; ``scale`` sets their spread."""
    W = torch.linalg.qr(torch.randn(d, 3, generator=torch.Generator().manual_seed(123)))[0]
    g = torch.Generator().manual_seed(seed)
    Z = torch.randn(n, 3, generator=g) * torch.tensor([3.0, 2.0, 1.0])
    return 0.5 + scale * (Z @ W.T) + 0.05 * scale * torch.randn(n, d, generator=g)


def test_shapes_and_layers():
    model = MLPAutoencoder((784, 512, 128, 2), hidden="elu", output="sigmoid")
    x = torch.rand(5, 784)
    assert model.encode(x).shape == (5, 2) and model.decode(torch.zeros(5, 2)).shape == (5, 784)
    assert model(x).shape == (5, 784) and model.code_size == 2
    kinds = [type(m) for m in model.decoder]
    assert kinds == [nn.Linear, nn.ELU, nn.Linear, nn.ELU, nn.Linear, nn.Sigmoid]
    assert [type(m) for m in model.encoder][-1] is nn.Linear  # a linear bottleneck
    out = model(x)
    assert out.min() >= 0 and out.max() <= 1


def test_linear_autoencoder_is_two_matrices():
    model = MLPAutoencoder((784, 10), hidden=None, output=None)
    assert all(isinstance(m, nn.Linear) for m in [*model.encoder, *model.decoder])
    assert model.decoder[0].weight.shape == (784, 10)


@pytest.mark.parametrize("kwargs, match", [
    (dict(sizes=(784,)), "at least two"),
    (dict(sizes=(784, 0)), "at least two"),
    (dict(hidden="tanhh"), "unknown activation"),
    (dict(output="softmax"), "unknown activation"),
])
def test_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLPAutoencoder(**kwargs)


def test_init_output_bias_starts_at_the_mean():
    X = torch.rand(64, 784) * 0.8 + 0.1
    for output in ("sigmoid", None):
        model = MLPAutoencoder((784, 3), hidden=None, output=output).init_output_bias(X)
        torch.testing.assert_close(model.decode(torch.zeros(1, 3))[0], X.mean(0), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="784"):
        MLPAutoencoder((784, 3)).init_output_bias(torch.rand(4, 10))


def test_training_lowers_the_error_and_logs_a_history():
    X = low_rank_data(seed=0, scale=0.05).clamp(0, 1)
    X_val = low_rank_data(seed=1, scale=0.05).clamp(0, 1)
    torch.manual_seed(0)
    model = MLPAutoencoder((24, 16, 3), hidden="elu", output="sigmoid").init_output_bias(X)
    before = reconstruction_error(model, X_val)
    h = train_autoencoder(model, X, X_val, num_epochs=15, batch_size=64, lr=3e-3, progress=False)
    assert set(h) >= {"epoch", "train_loss", "val_loss", "lr", "seconds"}
    assert h.epoch == list(range(1, 16))
    assert h.val_loss[-1] < 0.5 * before
    assert h.val_loss[-1] == pytest.approx(reconstruction_error(model, X_val), rel=1e-5)
    assert not model.training


def test_cosine_schedule_decays_to_zero():
    X = low_rank_data(n=100)
    model = MLPAutoencoder((24, 3), hidden=None, output=None)
    h = train_autoencoder(model, X, num_epochs=4, batch_size=32, lr=1e-2, lr_schedule="cosine",
                          progress=False)
    assert h.lr[0] < 1e-2 and h.lr == sorted(h.lr, reverse=True)
    assert h.lr[-1] == pytest.approx(0.0, abs=1e-12)
    assert h.lr[1] == pytest.approx(1e-2 * 0.5 * (1 + math.cos(math.pi / 2)), rel=1e-6)


def test_same_seed_same_result():
    X = low_rank_data(n=128)
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        model = MLPAutoencoder((24, 8, 2))
        runs.append(train_autoencoder(model, X, num_epochs=2, batch_size=32, seed=5,
                                      progress=False).train_loss)
    assert runs[0] == runs[1]


def test_linear_autoencoder_finds_the_principal_subspace():
    # Baldi & Hornik: the optimum of a linear autoencoder spans the top-k principal directions.
    X, X_val = low_rank_data(seed=0), low_rank_data(seed=1)
    pca = PCA(3).fit(X)
    torch.manual_seed(0)
    model = MLPAutoencoder((24, 2), hidden=None, output=None).init_output_bias(X)
    h = train_autoencoder(model, X, X_val, num_epochs=40, batch_size=64, lr=3e-2,
                          lr_schedule="cosine", progress=False)
    assert h.val_loss[-1] <= 1.01 * pca.reconstruction_error(X_val, 2)
    angles = principal_angles(model.decoder[0].weight.detach(), pca.components_[:2].T)
    assert angles.max().item() < math.radians(3)
    W = model.decoder[0].weight.detach()
    assert not torch.allclose(W.T @ W, torch.eye(2), atol=0.05)  # a basis, but not orthonormal


def test_encode_and_error_work_in_batches_and_keep_the_mode():
    X = torch.rand(50, 24)
    model = MLPAutoencoder((24, 6, 2)).train()
    Z = encode(model, X, batch_size=7)
    torch.testing.assert_close(Z, model.encode(X))
    err = reconstruction_error(model, X, batch_size=9)
    assert err == pytest.approx(((model(X) - X) ** 2).mean().item(), rel=1e-5)
    assert model.training


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_epochs=0), "num_epochs"),
    (dict(lr=0.0), "lr > 0"),
    (dict(lr_schedule="linear"), "lr_schedule"),
    (dict(lr_schedule="cosine", lr_step_epochs=2), "not both"),
    (dict(optimizer="rmsprop"), "optimizer"),
])
def test_bad_schedule(kwargs, match):
    model = MLPAutoencoder((24, 2))
    with pytest.raises(ValueError, match=match):
        train_autoencoder(model, torch.rand(10, 24), progress=False, **kwargs)


def test_bad_inputs():
    model = MLPAutoencoder((24, 2))
    with pytest.raises(ValueError, match="features"):
        train_autoencoder(model, torch.rand(10, 23), progress=False)
    with pytest.raises(ValueError, match="X_val"):
        train_autoencoder(model, torch.rand(10, 24), torch.rand(3, 5), progress=False)
    with pytest.raises(ValueError, match="2-D"):
        train_autoencoder(model, torch.rand(24), progress=False)


def test_divergence_is_reported():
    X = torch.rand(20, 24)
    X[3, 5] = float("nan")
    with pytest.raises(TrainingDiverged):
        train_autoencoder(MLPAutoencoder((24, 2)), X, num_epochs=1, progress=False)
