"""Multi-seed studies behind the chapters' comparative claims, precomputed and loaded by them.

A chapter that concludes something from a *difference* — pretraining against training from
scratch (chapter 2), one fix of DEC's collapse against another (chapter 4), one augmentation or
entropy weight against another (chapter 5) — shows its own single run and, next to it, the same
experiment repeated over several seeds. The repeats cost minutes, so they are run once with

    python -m dctutor study NAME --profile quick --seeds 3

and committed under ``results/studies-<profile>/NAME/seed-<N>.json``, one file per seed, each
written as soon as that seed finishes (a rerun skips the seeds already there). The chapter reads
them with :func:`load`. Each study calls the same functions the chapter calls, so the chapter's
own run is the study's seed 0 whenever the chapter runs with seed 0.

Studies (:data:`STUDIES`):

* ``sdae-pretraining`` — chapter 2: (a) layer-wise pretrained + fine-tuned against (b) the same
  network trained end to end from scratch for the same number of steps; k-means ACC/NMI and
  reconstruction error.
* ``dec-collapse`` — chapter 4: DEC with the collapsing setup of the Q&A question and with each
  of the three fixes alone and together (:func:`collapse_ablation`).
* ``iic-ablations`` — chapter 5: augmentations one by one and combined, the entropy weight α
  (1, 10 and a warm-up from 1 to 10) and the over-clustering head (:func:`iic_ablation`).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from . import config, data, metrics

RESULTS = Path(__file__).resolve().parents[1] / "results"


# -- chapter 2 (and the k-means baselines of chapter 4) -----------------------------------------


def kmeans_labels(F, n_init: int, seed: int, n_clusters: int = 10,
                  dtype=np.float64) -> np.ndarray:
    """k-means (scikit-learn, k-means++ and ``n_init`` restarts) on the rows of ``F``.

    F (N × d) features — pixels, PCA codes, an encoder's codes; tensor (any device) or array,
    clustered in ``dtype`` → (N,) cluster labels in 0, …, n_clusters − 1. The best restart
    (lowest within-cluster sum of squares) wins, as in DEC's own initialisation. Chapter 4's
    baselines; the bench's and :func:`dctutor.manifold.kmeans_cluster` call it too.
    """
    from sklearn.cluster import KMeans

    F = np.asarray(torch.as_tensor(F).detach().cpu(), dtype=dtype)
    return KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed).fit_predict(F)


def kmeans_scores(Z, y, n_init: int, seed: int) -> dict[str, float]:
    """k-means with K = 10 on the rows of ``Z`` (N × d), in float32; ACC, NMI, ARI against ``y``."""
    return metrics.evaluate(np.asarray(y), kmeans_labels(Z, n_init, seed, dtype=np.float32))


def scratch_stack(X: torch.Tensor, s: dict, seed: int, progress: bool = True):
    """Chapter 2's network (b): the same stack, trained end to end from scratch, no corruption.

    It gets as many SGD steps as layer-wise pretraining plus fine-tuning take together — one
    epoch per pretraining epoch of each layer, plus the fine-tuning epochs — and starts from
    the same initial weights as :func:`dctutor.autoencoders.train_stack` with the same seed.
    Returns the model and its training history.
    """
    from . import autoencoders

    torch.manual_seed(seed)
    net = autoencoders.StackedDenoisingAutoencoder(s["dims"], s["dropout"]).to(X.device)
    num_epochs = (len(s["dims"]) - 1) * s["layer_num_epochs"] + s["finetune_num_epochs"]
    h = autoencoders.finetune(net, X, num_epochs=num_epochs, batch_size=s["batch_size"],
                              lr=s["lr"], optimizer=s["optimizer"], momentum=s["momentum"],
                              seed=seed, desc="from scratch", progress=progress)
    return net.eval(), h


def sdae_pretraining(seed: int, profile: str, device: torch.device) -> dict:
    """One seed of chapter 2's comparison: (a) pretrained + fine-tuned vs (b) from scratch."""
    from . import autoencoders

    s = config.schedule("sdae", profile)
    ds = data.load(s["dataset"], "all")
    X, y = ds.inputs(device), ds.labels.numpy()
    out = {}
    t0 = time.perf_counter()
    stack, _ = autoencoders.train_stack(X, s, seed=seed, progress=False)
    out["pretrained"] = dict(kmeans_scores(autoencoders.encode(stack, X), y,
                                           s["kmeans_restarts"], seed),
                             mse=autoencoders.reconstruction_error(stack, X),
                             seconds=time.perf_counter() - t0)
    t0 = time.perf_counter()
    scratch, _ = scratch_stack(X, s, seed, progress=False)
    out["scratch"] = dict(kmeans_scores(autoencoders.encode(scratch, X), y,
                                        s["kmeans_restarts"], seed),
                          mse=autoencoders.reconstruction_error(scratch, X),
                          seconds=time.perf_counter() - t0)
    return out


# -- chapter 4 --------------------------------------------------------------------------------


def collapse_data(s: dict, device: torch.device):
    """The Fashion-MNIST images of chapter 4's collapse and of its page on Fashion-MNIST:
    ``(X, y, dataset)``.

    ``s`` is the ``"dec"`` schedule: ``fashion_dataset``, cut to ``fashion_subset`` images (a
    fixed subset, seed 0) when that is set.
    """
    fashion = data.load(s["fashion_dataset"], "all")
    if s["fashion_subset"]:
        fashion = fashion.subset(s["fashion_subset"], seed=0)
    return fashion.inputs(device), fashion.labels.numpy(), fashion


def small_autoencoder(X: torch.Tensor, s: dict, seed: int, proper: bool, progress: bool = True):
    """The question's 784-32-32-256-10 autoencoder, trained end to end on ``X``.

    ``proper=False``: as in the question — ``collapse_pretrain_epochs`` epochs of SGD at
    ``collapse_pretrain_lr`` with momentum. ``proper=True``: ``fixed_pretrain_epochs`` epochs of
    ``fixed_pretrain_optimizer`` at ``fixed_pretrain_lr``. No layer-wise stage, no dropout.
    """
    from . import autoencoders

    if proper:
        epochs, opt, lr = (s["fixed_pretrain_epochs"], s["fixed_pretrain_optimizer"],
                           s["fixed_pretrain_lr"])
    else:
        epochs, opt, lr = s["collapse_pretrain_epochs"], "sgd", s["collapse_pretrain_lr"]
    torch.manual_seed(seed)
    net = autoencoders.StackedDenoisingAutoencoder(s["collapse_dims"]).to(X.device)
    autoencoders.train_autoencoder(net, X, num_epochs=epochs, batch_size=s["batch_size"], lr=lr,
                                   optimizer=opt, momentum=s["momentum"], seed=seed,
                                   desc="small autoencoder", progress=progress)
    return net


def run_dec_recorded(net, X: torch.Tensor, y, s: dict, seed: int, lr: float,
                     update_interval: int):
    """DEC on ``X`` from ``net``'s encoder; returns the history and the collapse warnings raised."""
    from . import dec

    keys = ("batch_size", "momentum", "tol", "kmeans_restarts", "collapse_fraction",
            "dead_fraction")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", dec.ClusterCollapseWarning)
        h = dec.train_dec(dec.DEC(net.encoder, n_clusters=10), X, y, lr=lr,
                          update_interval=update_interval, max_steps=s["collapse_max_steps"],
                          seed=seed, progress=False, **{k: s[k] for k in keys})
    return h, [w for w in caught if issubclass(w.category, dec.ClusterCollapseWarning)]


def collapse_variants(s: dict) -> dict[str, tuple[bool, float, int]]:
    """Chapter 4's five runs: name → (proper pretraining?, DEC learning rate, update interval)."""
    bad_lr, bad_int = s["collapse_lr"], s["collapse_update_interval"]
    return {
        "as in the question": (False, bad_lr, bad_int),
        f"DEC learning rate {bad_lr:g} → {s['lr']:g}": (False, s["lr"], bad_int),
        f"target every {bad_int} → {s['update_interval']} steps": (False, bad_lr,
                                                                   s["update_interval"]),
        f"pretraining: {s['fixed_pretrain_epochs']} epochs of "
        f"{s['fixed_pretrain_optimizer'].capitalize()}": (True, bad_lr, bad_int),
        "all three": (True, s["lr"], s["update_interval"]),
    }


def collapse_ablation(X: torch.Tensor, y, s: dict, seed: int, progress: bool = False) -> dict:
    """DEC with the question's setup and each fix: name → (history, collapse warnings)."""
    nets = {proper: small_autoencoder(X, s, seed, proper, progress) for proper in (False, True)}
    return {name: run_dec_recorded(nets[proper], X, y, s, seed, lr, interval)
            for name, (proper, lr, interval) in collapse_variants(s).items()}


TRACE_KEYS = ("step", "size_entropy", "largest", "confidence", "embedding_spread",
              "centre_spread", "centre_ratio", "label_change", "acc", "nmi")


def dec_collapse(seed: int, profile: str, device: torch.device) -> dict:
    """One seed of chapter 4's collapse ablation: per variant, the outcome and its trace."""
    s = config.schedule("dec", profile)
    X, y, _ = collapse_data(s, device)
    out = {}
    for name, (h, caught) in collapse_ablation(X, y, s, seed).items():
        out[name] = {"stop_reason": h.stop_reason, "steps": h.steps,
                     "collapsed": bool(any(h["collapsed"])), "warnings": len(caught),
                     "trace": {k: list(h[k]) for k in TRACE_KEYS}}
    return out


# -- chapter 5 --------------------------------------------------------------------------------


def alpha_schedule(alpha: float | str) -> float | Callable[[int], float]:
    """An entropy weight for :func:`dctutor.iic.train`: a number, or ``"A→B@E"`` — α = A for the
    first E epochs, then B (a warm-up)."""
    if isinstance(alpha, str):
        start, rest = alpha.split("→")
        end, epochs = rest.split("@")
        a, b, e = float(start), float(end), int(epochs)
        return lambda epoch: a if epoch <= e else b
    return float(alpha)


def main_alpha(s: dict) -> float | Callable[[int], float]:
    """The entropy weight of chapter 5's main run from the ``"iic"`` schedule ``s``: ``alpha``,
    or, when ``warmup_epochs`` > 0, ``alpha`` for that many epochs and ``alpha_after_warmup``
    after them (the warm-up of "The entropy weight α")."""
    after = s["alpha_after_warmup"]              # read in every profile (the smoke checks it)
    if s["warmup_epochs"] > 0:
        return alpha_schedule(f"{s['alpha']:g}→{after:g}@{s['warmup_epochs']}")
    return float(s["alpha"])


def warmup_name(s: dict) -> str:
    """The warm-up setting of the ``"iic"`` schedule as :func:`alpha_schedule` reads it."""
    return (f"{s['alpha']:g}→{max(s['ablation_alphas']):g}"
            f"@{s['ablation_warmup_epochs']}")


def iic_ablation(X: torch.Tensor, y: torch.Tensor, s: dict, seed: int, *,
                 augmentation: str | None = None, alpha: float | str | None = None,
                 overcluster_k: int | None = None, eval_every: int = 0) -> dict:
    """Train a fresh IIC network with one setting changed from the ``"iic"`` schedule ``s``.

    Returns the main head's ACC, NMI and ARI on ``X`` (un-augmented), its mean confidence (mean
    largest softmax probability: 1/K for a network that hedges), the number of clusters it uses
    and, with ``eval_every``, the per-epoch ``curve`` of ACC and confidence.
    """
    from . import augment, iic

    augmentation = s["augmentation"] if augmentation is None else augmentation
    alpha = s["alpha"] if alpha is None else alpha
    overcluster_k = s["overcluster_k"] if overcluster_k is None else overcluster_k
    config.seed_everything(seed)
    net = iic.ClusterNet(s["channels"], k=10, overcluster_k=overcluster_k,
                         global_pool=s["global_pool"]).to(X.device)
    h = iic.train(net, X, y if eval_every else None, augmentation=augment.named(augmentation),
                  num_epochs=s["ablation_num_epochs"], batch_size=s["batch_size"], lr=s["lr"],
                  alpha=alpha_schedule(alpha), repeats=s["repeats"], eval_every=eval_every,
                  seed=seed, progress=False)
    probs = iic.predict(net, X, probabilities=True)[0]
    out = metrics.evaluate(y.cpu().numpy(), probs.argmax(1).cpu().numpy())
    out |= {"confidence": float(probs.max(1).values.mean()),
            "clusters used": int(probs.argmax(1).unique().numel())}
    if eval_every:
        out["curve"] = {"epoch": list(h["eval_epoch"]), "acc": list(h["acc"]),
                        "confidence": [float(c) for c in h["confidence"]]}
    return out


def iic_settings(s: dict) -> list[tuple[str, str, dict]]:
    """Chapter 5's ablations as (kind, value, changes): every augmentation, every α other than the
    schedule's (the default setting, ``("augmentation", s["augmentation"])``, is that run), the
    warm-up, and the main head alone. The default and the α runs record per-epoch curves."""
    from . import augment

    settings = [("augmentation", a, dict(augmentation=a, eval_every=int(a == s["augmentation"])))
                for a in augment.NAMES]
    settings += [("alpha", f"{a:g}", dict(alpha=a, eval_every=1)) for a in s["ablation_alphas"]
                 if a != s["alpha"]]
    settings += [("alpha", warmup_name(s), dict(alpha=warmup_name(s), eval_every=1))]
    settings += [("heads", "main head only", dict(overcluster_k=0))]
    return settings


def ablation_data(s: dict, device: torch.device):
    """Chapter 5's ablation images: a fixed subset (seed 0) of ``ablation_subset`` images."""
    ds = data.load(s["dataset"], "all").subset(s["ablation_subset"], seed=0)
    return ds.inputs(device, flat=False), ds.targets(device)


def iic_ablations(seed: int, profile: str, device: torch.device) -> dict:
    """One seed of chapter 5's ablations: ``{"kind/value": scores}``."""
    s = config.schedule("iic", profile)
    X, y = ablation_data(s, device)
    out = {}
    for kind, value, changes in iic_settings(s):
        out[f"{kind}/{value}"] = iic_ablation(X, y, s, seed, **changes)
    return out


# -- running and loading ----------------------------------------------------------------------

STUDIES: dict[str, Callable[[int, str, torch.device], dict]] = {
    "sdae-pretraining": sdae_pretraining,
    "dec-collapse": dec_collapse,
    "iic-ablations": iic_ablations,
}


RAW = "https://raw.githubusercontent.com/dctutor/dctutor/main/results"


def folder(name: str, profile: str, root: str | Path | None = None) -> Path:
    """Where study ``name`` of ``profile`` keeps its per-seed files (under ``root``, default the
    repository's ``results/``)."""
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; choose one of {', '.join(STUDIES)}")
    return Path(root if root is not None else RESULTS) / f"studies-{profile}" / name


def results_file(relpath: str, download: bool = True) -> Path:
    """A committed result file, ``results/<relpath>``: from the repository checkout (the
    package's or the working folder's, or its parent's, as when a chapter runs in ``book/``), or
    else — in Colab, where only the notebook is open — downloaded from GitHub into the cache.

    Raises FileNotFoundError when it is nowhere to be had.
    """
    for base in (RESULTS, Path.cwd() / "results", Path.cwd().parent / "results"):
        if (base / relpath).is_file():
            return base / relpath
    target = data.cache_dir() / "results" / relpath
    if target.is_file():
        return target
    if download:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{RAW}/{relpath}", timeout=20) as response:
                payload = response.read()
        except OSError:
            pass
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(payload)
            return target
    raise FileNotFoundError(f"results/{relpath} is neither in a checkout of the repository nor "
                            f"downloadable from {RAW}")


def run(name: str, seeds: int, profile: str, device: torch.device,
        root: str | Path | None = None, log: Callable[[str], None] = print) -> list[Path]:
    """Run study ``name`` for seeds 0 … seeds − 1, skipping seeds already on disk."""
    out = folder(name, profile, root)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(seeds):
        path = out / f"seed-{seed}.json"
        paths.append(path)
        if path.is_file():
            log(f"{name} seed {seed}: already done ({path})")
            continue
        t0 = time.perf_counter()
        result = STUDIES[name](seed, profile, device)
        record = {"study": name, "profile": profile, "seed": seed,
                  "device": config.device_name(device),
                  "seconds": time.perf_counter() - t0, "result": result}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1, default=float))
        tmp.replace(path)                        # a seed is on disk whole or not at all
        log(f"{name} seed {seed}: {record['seconds']:.0f} s -> {path}")
    return paths


def load(name: str, profile: str = "quick", root: str | Path | None = None) -> list[dict]:
    """The per-seed records of a study (``record["result"]`` holds what the study returned),
    read from ``root`` if given, else found by :func:`results_file`.

    Raises FileNotFoundError, naming the command that computes them, when none are found.
    """
    relpath = f"studies-{profile}/{name}/seed-{{}}.json"
    if root is not None:
        paths = sorted(folder(name, profile, root).glob("seed-*.json"))
    else:
        try:
            first = results_file(relpath.format(0))
        except FileNotFoundError:
            first = None
        if first is not None and data.cache_dir() not in first.parents:
            paths = sorted(first.parent.glob("seed-*.json"))      # a checkout: all seeds are here
        else:
            paths = [first] if first is not None else []
            for seed in range(1, 100):    # downloaded one by one: seeds are 0, 1, … without gaps
                try:
                    paths.append(results_file(relpath.format(seed)))
                except FileNotFoundError:
                    break
    records = [json.loads(p.read_text()) for p in paths]
    if not records:
        raise FileNotFoundError(
            f"no results of study {name!r} for profile {profile!r}; compute them with: "
            f"python -m dctutor study {name} --profile {profile} --seeds 3")
    return sorted(records, key=lambda r: r["seed"])


def bench_runs(dataset: str, profile: str) -> tuple[str, list[dict]]:
    """The committed benchmark runs of ``dataset`` (``mnist`` or ``fashion-mnist``) for
    ``profile``, or the ``quick`` profile's when ``profile`` has none: ``(profile, runs)``."""
    for prof in dict.fromkeys([profile, "quick"]):
        try:
            path = results_file(f"{prof}-{dataset}/runs.json")
        except FileNotFoundError:
            continue
        return prof, json.loads(path.read_text())["runs"]
    raise FileNotFoundError(f"no benchmark results for {dataset!r}; compute them with: python -m "
                            f"dctutor bench --profile quick --out results/quick-{dataset}")


def load_available(name: str, profile: str, root: str | Path | None = None) -> list[dict]:
    """:func:`load` for ``profile``, falling back to the ``quick`` profile's results when the
    profile has none yet (check ``record["profile"]`` to say which the reader sees)."""
    try:
        return load(name, profile, root)
    except FileNotFoundError:
        if profile == "quick":
            raise
        return load(name, "quick", root)


def pm(values, digits: int = 3) -> str:
    """``"0.612 ± 0.018"``: mean ± sample standard deviation of ``values``."""
    from .bench import mean_std

    m, sd = mean_std(list(values))
    return f"{m:.{digits}f} ± {sd:.{digits}f}"
