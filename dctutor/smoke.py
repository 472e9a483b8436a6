"""A smoke run of a profile: every code path with the profile's shapes, a handful of steps each.

The ``full`` profile is meant for a GPU, and CI has none. What CI *can* do is run every training
call the chapters and the benchmark make, with the full schedule's network widths, batch sizes,
augmentations, pooling and head sizes, on the full-size data loader — but with every *count*
(epochs, steps, subset sizes, restarts, seeds) cut to almost nothing. A shape, device or
plumbing bug then fails in CI instead of in a reader's Colab GPU runtime.

:func:`smoke_schedules` makes those cut-down schedules; :func:`run` installs them in
:data:`dctutor.config.SCHEDULES` for the duration of the run, executes the calls of every
chapter section and every benchmark method, checks what comes out (shapes, finite losses,
labels in range, history fields) and reports every schedule entry the run never read: a new
key the smoke does not reach is a failure (``tests/test_smoke.py``).

    python -m dctutor smoke --profile full        # the same from the command line
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable

import numpy as np
import torch

from . import config, data

# What a count-like entry is cut to. Everything else (widths, batch sizes, learning rates,
# datasets, augmentations, pooling, head sizes) keeps the profile's value.
CAPS: dict[str, int] = {
    "num_epochs": 1, "linear_num_epochs": 1, "layer_num_epochs": 1, "finetune_num_epochs": 1,
    "fashion_layer_num_epochs": 1, "fashion_finetune_num_epochs": 1,
    "collapse_pretrain_epochs": 1, "fixed_pretrain_epochs": 1, "collapse_num_epochs": 1,
    "ablation_num_epochs": 2, "ablation_warmup_epochs": 1, "warmup_epochs": 1,
    "max_steps": 6, "collapse_max_steps": 6, "update_interval": 3, "collapse_update_interval": 2,
    "kmeans_restarts": 1, "kmeans_n_init": 1, "seeds": 1, "repeats": 1, "eval_every": 1,
    "scatter_points": 200, "tsne_points": 100,
    "fashion_subset": 1200, "collapse_subset": 300, "ablation_subset": 300,
    "ae_num_epochs": 1, "idec_max_steps": 6, "compare_max_steps": 6, "idec_update_interval": 3,
    "stability_seeds": 2,
    "gmm_n_init": 1, "knn_points": 200, "picture_points": 300, "seed_points": 300,
}
SAMPLES = 1200   # images the smoke trains on (≥ the largest batch size of any profile)


class Recorder(dict):
    """A schedule section that remembers which of its entries were read."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __deepcopy__(self, memo):          # config.schedule() hands out copies: share the log
        return self

    def unread(self) -> set[str]:
        return set(self) - self.read


def cap(entries: dict) -> dict:
    """A copy of one schedule section with every count in :data:`CAPS` cut down."""
    capped = {}
    for key, value in entries.items():
        if key in CAPS:              # None means "all of it": capped too
            value = CAPS[key] if value is None else min(value, CAPS[key])
        capped[key] = value
    return capped


def smoke_schedules(profile: str) -> dict[str, Recorder]:
    """The profile's schedule table with every count in :data:`CAPS` cut down, as recorders."""
    return {section: Recorder(cap(entries))
            for section, entries in config.schedule(None, profile).items()}


@contextlib.contextmanager
def installed(profile: str, schedules: dict[str, dict]):
    """Replace ``config.SCHEDULES[profile]`` by ``schedules`` inside the ``with`` block."""
    saved = config.SCHEDULES[profile]
    config.SCHEDULES[profile] = schedules
    try:
        yield schedules
    finally:
        config.SCHEDULES[profile] = saved


# -- checks -------------------------------------------------------------------------------------


def _labels_ok(labels, n: int, k: int, what: str) -> None:
    labels = np.asarray(torch.as_tensor(labels).cpu())
    if labels.shape != (n,) or labels.min() < 0 or labels.max() >= k:
        raise AssertionError(f"{what}: labels of shape {labels.shape} in "
                             f"[{labels.min()}, {labels.max()}], expected {n} labels in [0, {k})")


def _finite(values, what: str) -> None:
    v = np.asarray(torch.as_tensor(values, dtype=torch.float64).cpu())
    if v.size == 0 or not np.isfinite(v).all():
        raise AssertionError(f"{what}: not finite or empty: {v}")


def _scores_ok(result: dict, what: str) -> None:
    for key in ("acc", "nmi", "ari"):
        if not (-1 <= result[key] <= 1):
            raise AssertionError(f"{what}: {key} = {result[key]} out of range")


# -- one function per chapter section (the calls the chapter makes) ----------------------------


def _sample(name: str, device, n: int = SAMPLES):
    """All of a dataset through the real loader, then the first ``n`` images of a fixed shuffle."""
    ds = data.load(name, "all")
    full_size = len(ds)
    ds = ds.subset(min(n, len(ds)), seed=0)
    return ds, full_size


def pca_ae(device, log) -> None:
    """Chapter 1: PCA, the linear autoencoder, the nonlinear autoencoders, k-means on codes."""
    from sklearn.cluster import KMeans

    from . import autoencoders as ae
    from .pca import PCA

    s = config.schedule("pca_ae")
    ds, full = _sample(s["dataset"], device)
    X = ds.inputs(device)
    X_train, X_test = X[: len(X) * 4 // 5], X[len(X) * 4 // 5:]
    pca = PCA().fit(X_train)
    curve = pca.error_curve(X_test)[: s["max_k"] + 1]
    _finite(curve, "PCA error curve")
    linear = ae.MLPAutoencoder((784, s["linear_code"]), hidden=None, output=None).to(device)
    h = ae.train_autoencoder(linear, X_train, X_test, num_epochs=s["linear_num_epochs"],
                             batch_size=s["linear_batch_size"], lr=s["linear_lr"],
                             lr_schedule=s["lr_schedule"], progress=False)
    _finite(h["val_loss"], "linear autoencoder loss")
    for code in s["codes"]:
        model = ae.MLPAutoencoder((784, *s["hidden"], code), hidden="elu", output="sigmoid")
        model = model.to(device).init_output_bias(X_train)
        h = ae.train_autoencoder(model, X_train, X_test, num_epochs=s["num_epochs"],
                                 batch_size=s["batch_size"], lr=s["lr"],
                                 lr_schedule=s["lr_schedule"], progress=False)
        _finite(h["train_loss"] + h["val_loss"], f"autoencoder {code}-D loss")
        Z = ae.encode(model, X).cpu().numpy()
        assert Z.shape == (len(X), code), Z.shape
        labels = KMeans(10, n_init=s["kmeans_n_init"], random_state=0).fit_predict(Z)
        _labels_ok(labels, len(X), 10, f"k-means on the {code}-D code")
    assert s["scatter_points"] <= len(X)
    log(f"pca_ae: {s['dataset']} ({full:,} images loaded), PCA + linear + {len(s['codes'])} autoencoders")


def sdae(device, log) -> None:
    """Chapter 2: layer-wise pretraining and fine-tuning, the network trained from scratch."""
    from . import autoencoders as ae
    from . import studies

    s = config.schedule("sdae")
    ds, full = _sample(s["dataset"], device)
    X, y = ds.inputs(device), ds.labels.numpy()
    stack, info = ae.train_stack(X, s, seed=0, progress=False)
    assert tuple(stack.dims) == tuple(s["dims"]), stack.dims
    _finite([h.last("train_loss") for h in info["layers"]] + [info["finetune"].last("train_loss")],
            "stack losses")
    scratch, h = studies.scratch_stack(X, s, 0, progress=False)
    _finite(h["train_loss"], "scratch loss")
    scores = studies.kmeans_scores(ae.encode(stack, X), y, s["kmeans_restarts"], 0)
    _scores_ok(scores, "SDAE + k-means")
    assert s["tsne_points"] <= len(X)
    log(f"sdae: {s['dataset']} ({full:,} images), stack {'-'.join(map(str, s['dims']))}")


def dec_section(device, log) -> None:
    """Chapter 4: DEC from the stack, the collapse and its fixes, DEC on Fashion-MNIST."""
    from . import autoencoders as ae
    from . import dec, studies

    s = config.schedule("dec")
    sdae_s = config.schedule("sdae")
    ds, full = _sample(s["dataset"], device)
    X, y = ds.inputs(device), ds.labels.numpy()
    stack, _ = ae.train_stack(X, sdae_s, seed=0, progress=False)
    keys = ("batch_size", "lr", "momentum", "update_interval", "tol", "max_steps",
            "kmeans_restarts", "collapse_fraction", "dead_fraction")
    for seed in range(s["seeds"]):
        model = dec.DEC(stack.encoder, n_clusters=10)
        h = dec.train_dec(model, X, y, seed=seed, progress=False, **{k: s[k] for k in keys})
        _labels_ok(h.labels, len(X), 10, "DEC")
        _finite(h["loss"] + h["embedding_spread"] + h["centre_ratio"], "DEC history")
        assert h.stop_reason in ("converged", "collapsed", "max_steps"), h.stop_reason
        assert h.initial_labels is not None and len(h["step"]) >= 2
    Xf, yf, fashion = studies.collapse_data(s, device)
    assert len(Xf) == (s["fashion_subset"] or len(fashion)), len(Xf)
    for name, (h, _) in studies.collapse_ablation(Xf, yf, s, 0).items():
        _finite(h["size_entropy"] + h["confidence"], f"collapse variant {name!r}")
    fashion_s = dict(sdae_s, dataset=s["fashion_dataset"],
                     layer_num_epochs=s["fashion_layer_num_epochs"],
                     finetune_num_epochs=s["fashion_finetune_num_epochs"])
    fstack, _ = ae.train_stack(Xf, fashion_s, seed=0, progress=False)
    hf = dec.train_dec(dec.DEC(fstack.encoder, n_clusters=10), Xf, yf, progress=False,
                       **{k: s[k] for k in keys})
    _labels_ok(hf.labels, len(Xf), 10, "DEC on Fashion-MNIST")
    assert s["tsne_points"] <= len(X)
    log(f"dec: {s['dataset']} ({full:,} images), {s['fashion_dataset']}, "
        f"{len(studies.collapse_variants(s))} collapse variants")


def iic_section(device, log) -> None:
    """Chapter 5: the collapse demo, the two-head network, the ablations and the warm-up."""
    from . import augment, iic, studies

    s = config.schedule("iic")
    ds, full = _sample(s["dataset"], device)
    X, y = ds.inputs(device, flat=False), ds.targets(device)
    small = ds.subset(min(s["collapse_subset"], len(ds)), seed=0)
    Xs, ys = small.inputs(device, flat=False), small.targets(device)
    for loss_fn in (iic.agreement_loss, None):
        config.seed_everything(0)
        net = iic.ClusterNet(s["channels"], k=10, overcluster_k=0,
                             global_pool=s["global_pool"]).to(device)
        iic.train(net, Xs, ys, augmentation=augment.named(s["augmentation"]),
                  num_epochs=s["collapse_num_epochs"], batch_size=s["batch_size"], lr=s["lr"],
                  loss_fn=loss_fn, eval_every=0, progress=False)
    config.seed_everything(0)
    model = iic.ClusterNet(s["channels"], k=10, overcluster_k=s["overcluster_k"],
                           global_pool=s["global_pool"]).to(device)
    h = iic.train(model, X, y, augmentation=augment.named(s["augmentation"]),
                  num_epochs=s["num_epochs"], batch_size=s["batch_size"], lr=s["lr"],
                  alpha=studies.main_alpha(s), repeats=s["repeats"], eval_every=s["eval_every"],
                  progress=False)
    _finite(h["loss_main"] + h["loss_over"], "IIC losses")
    main, over = iic.predict(model, X)
    _labels_ok(main, len(X), 10, "IIC main head")
    _labels_ok(over, len(X), s["overcluster_k"], "IIC over-clustering head")
    assert np.array(h["P"][-1]).shape == (10, 10)
    from sklearn.cluster import KMeans

    pixels = KMeans(10, n_init=s["kmeans_n_init"], random_state=0).fit_predict(
        X.reshape(len(X), -1).cpu().numpy())
    _labels_ok(pixels, len(X), 10, "k-means on pixels")
    Xa, ya = studies.ablation_data(s, device)
    assert len(Xa) == s["ablation_subset"]
    for kind, value, changes in studies.iic_settings(s):
        r = studies.iic_ablation(Xa, ya, s, 0, **changes)
        _scores_ok(r, f"IIC ablation {kind}={value}")
    log(f"iic: {s['dataset']} ({full:,} images), trunk {s['channels']}, "
        f"global_pool={s['global_pool']}, batch {s['batch_size']}")


def manifold_section(device, log) -> None:
    """Chapter 6: UMAP + GMM, the seeds, N2D, DEC against IDEC, choosing K, your own data."""
    from sklearn.datasets import load_digits

    from . import autoencoders as ae
    from . import dec, manifold

    s = config.schedule("manifold")
    ds, full = _sample(s["dataset"], device)
    X = ds.inputs(device)
    Z = manifold.umap_embed(X, 10, n_neighbors=s["umap_n_neighbors"], min_dist=s["umap_min_dist"])
    _labels_ok(manifold.gmm_cluster(Z, 10, n_init=s["gmm_n_init"]), len(X), 10, "UMAP + GMM")
    assert s["knn_points"] <= len(X)
    pick = slice(0, min(len(X), s["picture_points"]))
    assert manifold.umap_embed(X[pick], 2, n_neighbors=s["umap_n_neighbors"]).shape[1] == 2
    parts = [manifold.umap_gmm(X[: s["seed_points"]], 10, seed=seed)[0]
             for seed in range(s["stability_seeds"])]
    assert 0 <= manifold.stability(parts)[0] <= 1
    model_ae = ae.MLPAutoencoder(s["ae_dims"], hidden="relu", output="sigmoid").to(device)
    h = ae.train_autoencoder(model_ae.init_output_bias(X), X, num_epochs=s["ae_num_epochs"],
                             batch_size=s["ae_batch_size"], lr=s["ae_lr"], progress=False)
    _finite(h["train_loss"], "N2D autoencoder loss")
    labels, Zn = manifold.umap_gmm(ae.encode(model_ae, X), 10, n_neighbors=s["umap_n_neighbors"])
    _labels_ok(labels, len(X), 10, "N2D")
    for decoder in (None, model_ae.decoder):
        model = dec.DEC(model_ae.encoder, 10, embedding_dim=model_ae.code_size)
        hist = dec.train_dec(model, X, ds.labels.numpy(), decoder=decoder, gamma=s["idec_gamma"],
                             optimizer=s["idec_optimizer"], lr=s["idec_lr"],
                             batch_size=s["idec_batch_size"], tol=s["idec_tol"],
                             update_interval=s["idec_update_interval"],
                             max_steps=s["compare_max_steps"], kmeans_restarts=s["kmeans_restarts"],
                             progress=False)
        _labels_ok(hist.labels, len(X), 10, "IDEC" if decoder is not None else "DEC")
    bic = manifold.gmm_bic(Zn, s["choose_ks"])
    _finite(list(bic.values()), "BIC")
    raw = load_digits()
    small = data.from_array(raw.data, y=raw.target, image_shape=(8, 8))
    _labels_ok(manifold.umap_gmm(small.inputs(), 10, n_neighbors=s["digits_n_neighbors"])[0],
               len(small), 10, "UMAP + GMM on scikit-learn's digits")
    log(f"manifold: {s['dataset']} ({full:,} images), autoencoder {s['ae_dims']}")


SECTIONS: dict[str, Callable] = {"pca_ae": pca_ae, "sdae": sdae, "dec": dec_section,
                                 "iic": iic_section, "manifold": manifold_section}


def bench_methods(device, log) -> None:
    """Every benchmark method once, on a sample of each dataset the profile benchmarks."""
    from . import bench

    profile = config.profile()
    for name in ("mnist", "fashion-mnist"):
        ds, full = _sample(name, device)
        p = bench.Prepared(name, ds.inputs(device), ds.labels.numpy(), profile, device)
        cache: dict = {}
        for method in bench.METHODS:
            t0 = time.perf_counter()
            row = bench.run(method, p, 0, cache)
            _scores_ok(row, f"bench {method} on {name}")
            assert row["seconds"] >= 0 and math.isfinite(row["seconds"])
            log(f"bench {method:12s} {name:14s} ACC {row['acc']:.3f} "
                f"({time.perf_counter() - t0:.1f} s)")


def run(profile: str = "full", device: torch.device | None = None,
        log: Callable[[str], None] = print) -> dict[str, set[str]]:
    """The smoke run of ``profile``; returns, per schedule section, the entries never read.

    Raises AssertionError (or the error a code path raises) when an output is wrong.
    """
    import os

    device = device if device is not None else torch.device("cpu")
    schedules = smoke_schedules(profile)
    saved_profile = os.environ.get("DCTUTOR_PROFILE")
    os.environ["DCTUTOR_PROFILE"] = profile
    try:
        with installed(profile, schedules):
            for name, fn in SECTIONS.items():
                t0 = time.perf_counter()
                fn(device, log)
                log(f"  {name}: {time.perf_counter() - t0:.1f} s")
            bench_methods(device, log)
    finally:
        if saved_profile is None:
            os.environ.pop("DCTUTOR_PROFILE", None)
        else:
            os.environ["DCTUTOR_PROFILE"] = saved_profile
    missing = set(schedules) - set(SECTIONS)
    if missing:
        raise AssertionError(f"schedule sections with no smoke function: {sorted(missing)}")
    return {name: section.unread() for name, section in schedules.items()}
