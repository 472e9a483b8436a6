"""Chapter 2: denoising layers, the stack, layer-wise pretraining, fine-tuning and the cache."""

import pytest
import torch

from dctutor import autoencoders as ae
from dctutor import config

DIMS = (20, 16, 12, 24, 3)   # small, with an overcomplete layer like 500 → 2000


def toy_data(n=256, d=20, seed=0):
    """Points in [0, 1] near a 3-D subspace: something a small stack can learn to reconstruct."""
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(n, 3, generator=g)
    mix = torch.rand(3, d, generator=g)
    return (z @ mix / 3 + 0.05 * torch.rand(n, d, generator=g)).clamp(0, 1)


SCHEDULE = dict(dataset="toy", dims=DIMS, batch_size=32, dropout=0.2, lr=3e-3, momentum=0.9,
                optimizer="adam", layer_num_epochs=4, finetune_num_epochs=6, tsne_points=10)


@pytest.fixture
def cache(clean_env, tmp_path):
    clean_env.setenv("DCTUTOR_CACHE", str(tmp_path))
    return tmp_path


# --- the denoising layer ----------------------------------------------------------------------


def test_denoising_layer_shapes_and_activations():
    torch.manual_seed(0)
    x = torch.randn(50, 8)
    inner = ae.DenoisingLayer(8, 4, innermost=True).eval()
    outer = ae.DenoisingLayer(8, 4, outermost=True).eval()
    middle = ae.DenoisingLayer(8, 4).eval()
    assert inner.encode(x).shape == (50, 4) and inner(x).shape == (50, 8)
    # The innermost code and the outermost reconstruction are linear (take negative values) ...
    assert (inner.encode(x) < 0).any()
    assert (outer.decode(torch.randn(50, 4)) < 0).any()
    # ... every other encoder and decoder output goes through a ReLU.
    assert (middle.encode(x) >= 0).all() and (middle.decode(torch.randn(50, 4)) >= 0).all()
    assert (outer.encode(x) >= 0).all() and (inner.decode(torch.randn(50, 4)) >= 0).all()


def test_corruption_happens_in_training_mode_only():
    torch.manual_seed(0)
    layer = ae.DenoisingLayer(100, 10, dropout=0.5)
    x = torch.ones(64, 100)
    layer.train()
    assert not torch.equal(layer(x), layer(x))            # a fresh mask each call
    dropped = (layer.corrupt(x) == 0).float().mean().item()
    assert 0.4 < dropped < 0.6
    layer.eval()
    assert torch.equal(layer(x), layer(x))
    assert torch.equal(layer(x), layer.decode(layer.encode(x)))


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_bad_dropout(p):
    with pytest.raises(ValueError, match="dropout"):
        ae.DenoisingLayer(4, 2, dropout=p)


# --- the stack --------------------------------------------------------------------------------


def test_stack_structure_and_shared_encoder():
    model = ae.StackedDenoisingAutoencoder()
    assert model.dims == (784, 500, 500, 2000, 10)
    assert len(model.layers) == 4
    assert [l.enc.out_features for l in model.layers] == [500, 500, 2000, 10]
    # The encoder DEC trains is the same parameters, not a copy.
    enc_params = {id(p) for p in model.encoder.parameters()}
    assert {id(l.enc.weight) for l in model.layers} <= enc_params
    assert model.encoder.out_features == 10
    x = torch.rand(7, 784)
    assert model.encode(x).shape == (7, 10)
    assert torch.equal(model.encode(x), model.encoder(x))
    assert model(x).shape == (7, 784)


def test_stack_forward_has_no_corruption_even_in_training_mode():
    model = ae.StackedDenoisingAutoencoder(DIMS, dropout=0.5).train()
    x = toy_data(32)
    assert torch.equal(model(x), model(x))


def test_stack_rejects_bad_dims():
    with pytest.raises(ValueError, match="dims"):
        ae.StackedDenoisingAutoencoder((784,))
    with pytest.raises(ValueError, match="dims"):
        ae.StackedDenoisingAutoencoder((784, 0, 10))


# --- training ---------------------------------------------------------------------------------


def test_pretrain_layerwise_trains_each_layer_on_the_codes_below():
    torch.manual_seed(0)
    X = toy_data()
    model = ae.StackedDenoisingAutoencoder(DIMS)
    before = [{k: v.clone() for k, v in l.state_dict().items()} for l in model.layers]
    histories = ae.pretrain_layerwise(model, X, num_epochs=5, batch_size=32, lr=3e-3,
                                      optimizer="adam", progress=False)
    assert len(histories) == len(model.layers)
    for h, layer, old in zip(histories, model.layers, before):
        assert len(h["train_loss"]) == 5
        assert h["train_loss"][-1] < h["train_loss"][0]
        assert any(not torch.equal(v, old[k]) for k, v in layer.state_dict().items())
    # Layer i reconstructs the (clean) codes of the layers below it better than at random init.
    H = X
    for layer, old in zip(model.layers, before):
        fresh = ae.DenoisingLayer(layer.enc.in_features, layer.enc.out_features)
        fresh.load_state_dict(old)
        assert ae.reconstruction_error(layer, H) < ae.reconstruction_error(fresh, H)
        with torch.no_grad():
            H = layer.encode(H)


def test_pretrain_layerwise_checks_inputs():
    model = ae.StackedDenoisingAutoencoder(DIMS)
    with pytest.raises(ValueError, match="features"):
        ae.pretrain_layerwise(model, torch.rand(10, 21), num_epochs=1, progress=False)
    with pytest.raises(ValueError, match="2-D"):
        ae.pretrain_layerwise(model, torch.rand(10), num_epochs=1, progress=False)


def test_finetune_lowers_the_error_of_the_whole_stack():
    torch.manual_seed(0)
    X = toy_data()
    model = ae.StackedDenoisingAutoencoder(DIMS)
    start = ae.reconstruction_error(model, X)
    h = ae.finetune(model, X, X[:64], num_epochs=8, batch_size=32, lr=3e-3, optimizer="adam",
                    progress=False)
    assert h["train_loss"][-1] < h["train_loss"][0]
    assert len(h["val_loss"]) == 8
    assert ae.reconstruction_error(model, X) < start


def test_train_stack_reads_its_schedule_and_returns_every_stage():
    X = toy_data()
    model, info = ae.train_stack(X, SCHEDULE, seed=1, progress=False)
    assert not model.training
    assert len(info["layers"]) == len(DIMS) - 1
    assert all(len(h["train_loss"]) == SCHEDULE["layer_num_epochs"] for h in info["layers"])
    assert len(info["finetune"]["train_loss"]) == SCHEDULE["finetune_num_epochs"]
    # The snapshot is the weights before fine-tuning, and fine-tuning changed them.
    tuned = model.state_dict()
    assert info["pretrained"].keys() == tuned.keys()
    assert any(not torch.equal(info["pretrained"][k], tuned[k]) for k in tuned)
    # Same seed, same stack (the cache relies on it).
    again, _ = ae.train_stack(X, SCHEDULE, seed=1, progress=False)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in tuned.items())


def test_train_stack_uses_the_optional_schedule_entries():
    X = toy_data(64)
    s = dict(SCHEDULE, optimizer="sgd", lr=0.05, finetune_lr=0.01, layer_num_epochs=3,
             finetune_num_epochs=3, layer_lr_step_epochs=1, finetune_lr_step_epochs=2)
    _, info = ae.train_stack(X, s, progress=False)
    assert info["layers"][0]["lr"] == pytest.approx([0.05, 0.005, 0.0005])
    assert info["finetune"]["lr"] == pytest.approx([0.01, 0.01, 0.001])


def test_train_stack_reports_a_missing_entry():
    bad = {k: v for k, v in SCHEDULE.items() if k != "layer_num_epochs"}
    with pytest.raises(ValueError, match="layer_num_epochs"):
        ae.train_stack(toy_data(16), bad, progress=False)


# --- saving, loading and the cache chapter 4 reads ----------------------------------------------


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = ae.StackedDenoisingAutoencoder(DIMS, dropout=0.3)
    path = ae.save_stack(model, tmp_path / "sub" / "stack.pt", note="hello")
    loaded = ae.load_stack(path)
    assert loaded.dims == DIMS and loaded.dropout == 0.3 and not loaded.training
    x = toy_data(16)
    assert torch.equal(model.eval()(x), loaded(x))
    assert ae.stack_info(path)["note"] == "hello"
    assert [p.name for p in path.parent.iterdir()] == ["stack.pt"]   # no temporary file left
    with pytest.raises(FileNotFoundError, match="no saved stack"):
        ae.load_stack(tmp_path / "missing.pt")


def test_stack_path_is_keyed_by_what_changes_the_weights(cache):
    base = ae.stack_path("mnist-5k", "quick", 0, SCHEDULE)
    assert base.parent == cache / "models" and base.suffix == ".pt"
    assert "mnist-5k" in base.name and "quick" in base.name and "seed0" in base.name
    assert ae.stack_path("mnist-5k", "quick", 1, SCHEDULE) != base
    assert ae.stack_path("mnist", "quick", 0, SCHEDULE) != base
    assert ae.stack_path("mnist-5k", "full", 0, SCHEDULE) != base
    assert ae.stack_path("mnist-5k", "quick", 0, dict(SCHEDULE, lr=1e-2)) != base
    # Evaluation settings and spelled-out defaults do not retrain.
    assert ae.stack_path("mnist-5k", "quick", 0, dict(SCHEDULE, tsne_points=99)) == base
    assert ae.stack_path("mnist-5k", "quick", 0, dict(SCHEDULE, finetune_lr=SCHEDULE["lr"])) == base
    assert ae.stack_path("mnist-5k", "quick", 0, dict(SCHEDULE, dims=list(DIMS))) == base


def test_pretrained_stack_trains_once_then_loads(cache, monkeypatch):
    X = toy_data()
    with pytest.raises(FileNotFoundError, match="run chapter 2"):
        ae.pretrained_stack("toy", "quick", 0, SCHEDULE, X=X, train=False)
    with pytest.raises(ValueError, match="pass X"):
        ae.pretrained_stack("toy", "quick", 0, SCHEDULE)
    first = ae.pretrained_stack("toy", "quick", 0, SCHEDULE, X=X, progress=False)
    path = ae.stack_path("toy", "quick", 0, SCHEDULE)
    assert path.is_file()
    meta = ae.stack_info(path)
    assert meta["n_samples"] == len(X) and meta["seed"] == 0 and meta["dataset"] == "toy"
    assert len(meta["histories"]["layers"]) == len(DIMS) - 1

    def no_training(*args, **kwargs):
        raise AssertionError("trained although a cached stack exists")

    monkeypatch.setattr(ae, "train_stack", no_training)
    second = ae.pretrained_stack("toy", "quick", 0, SCHEDULE, X=X)
    assert torch.equal(first.encode(X), second.encode(X))
    assert ae.pretrained_stack("toy", "quick", 0, SCHEDULE) is not None   # X is optional now
    with pytest.raises(ValueError, match="trained on 256 samples"):
        ae.pretrained_stack("toy", "quick", 0, SCHEDULE, X=X[:100])


def test_chapter_2_and_pretrained_stack_share_the_cache(cache):
    """What chapter 2 saves with cache_stack is what chapter 4 gets from pretrained_stack."""
    X = toy_data()
    model, info = ae.train_stack(X, SCHEDULE, seed=2, progress=False)
    path = ae.cache_stack(model, X, "toy", "quick", 2, SCHEDULE, info)
    assert path == ae.stack_path("toy", "quick", 2, SCHEDULE)
    reused = ae.pretrained_stack("toy", "quick", 2, SCHEDULE, X=X, train=False)
    assert torch.equal(reused.encode(X), model.encode(X))
    # The weights after layer-wise pretraining alone come back too (chapter 2's second page).
    layerwise = ae.pretrained_stack("toy", "quick", 2, SCHEDULE, X=X, train=False,
                                    stage="pretrained-only")
    assert not layerwise.training
    assert all(torch.equal(v, info["pretrained"][k]) for k, v in layerwise.state_dict().items())
    assert not torch.equal(layerwise.encode(X), model.encode(X))
    assert torch.equal(ae.load_stack(path, stage="pretrained-only").encode(X), layerwise.encode(X))
    with pytest.raises(ValueError, match="unknown stage"):
        ae.pretrained_stack("toy", "quick", 2, SCHEDULE, stage="finetuned")


def test_a_cache_without_the_pretrained_only_weights_is_retrained_once(cache, monkeypatch):
    """A file saved without ``info`` holds the fine-tuned weights only: asking for the stack
    after pretraining alone trains again (which yields both stages) and rewrites the file."""
    X = toy_data()
    model, info = ae.train_stack(X, SCHEDULE, seed=3, progress=False)
    path = ae.cache_stack(model, X, "toy", "quick", 3, SCHEDULE)          # no info
    with pytest.raises(KeyError, match="no pretrained-only weights"):
        ae.load_stack(path, stage="pretrained-only")
    with pytest.raises(FileNotFoundError, match="holds no pretrained-only weights"):
        ae.pretrained_stack("toy", "quick", 3, SCHEDULE, X=X, train=False, stage="pretrained-only")
    with pytest.raises(ValueError, match="pass X"):
        ae.pretrained_stack("toy", "quick", 3, SCHEDULE, stage="pretrained-only")
    layerwise = ae.pretrained_stack("toy", "quick", 3, SCHEDULE, X=X, stage="pretrained-only",
                                    progress=False)
    assert all(torch.equal(v, info["pretrained"][k]) for k, v in layerwise.state_dict().items())

    def no_training(*args, **kwargs):
        raise AssertionError("trained although the cache holds both stages now")

    monkeypatch.setattr(ae, "train_stack", no_training)
    tuned = ae.pretrained_stack("toy", "quick", 3, SCHEDULE, X=X)
    again = ae.pretrained_stack("toy", "quick", 3, SCHEDULE, X=X, stage="pretrained-only")
    assert torch.equal(tuned.encode(X), model.encode(X))               # same seed, same weights
    assert torch.equal(again.encode(X), layerwise.encode(X))


# --- the schedule table -------------------------------------------------------------------------


@pytest.mark.parametrize("profile", config.PROFILES)
def test_sdae_schedules_are_complete(profile):
    s = config.schedule("sdae", profile)
    trained = ae.stack_schedule(s)             # every entry train_stack needs is there
    assert trained["dims"][0] == 784 and trained["dims"][-1] == 10
    assert 0 < s["dropout"] < 1 and s["tsne_points"] >= 500
    assert s["optimizer"] in ("adam", "sgd")
    assert s["dataset"] == ("mnist-5k" if profile == "quick" else "mnist")
