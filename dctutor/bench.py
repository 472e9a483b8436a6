"""Rerun any method of the book on any dataset and seed, and benchmark them all (chapter 7).

Each runner takes the prepared inputs and the profile's schedules and returns a result
``dict`` with ``acc``, ``nmi``, ``ari``, ``seconds`` (wall time of the whole method, training
included) and ``train_samples_per_s`` (samples pushed through the training stages per second).
They call the same package code the chapters call; nothing is reimplemented here.

Data: the named dataset, ``all`` split (clustering is scored on the data it clusters, as in the
DEC and IIC papers). In the ``quick`` profile at most :data:`QUICK_MAX_SAMPLES` images are used
(a fixed, seed-independent random subset), so a quick run on full MNIST matches the embedded
sample in size.
"""

from __future__ import annotations

import csv
import json
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from . import config, data, metrics

METHODS = ("kmeans", "pca-kmeans", "ae-kmeans", "sdae-kmeans", "dec", "iic", "umap-gmm", "n2d",
           "dec-ae", "idec")
QUICK_MAX_SAMPLES = 5000
SMOKE_MAX_SAMPLES = 2000   # with $DCTUTOR_SMOKE (config.smoke_scale)
N_CLUSTERS = 10


@dataclass
class Prepared:
    """One dataset on the device, shared by every method and seed of a benchmark."""

    name: str
    X: torch.Tensor          # N × 784 floats in [0, 1] on the device
    y: np.ndarray            # N labels, only for scoring
    profile: str
    device: torch.device


def prepare(dataset: str, profile: str, device: torch.device, download: bool = True) -> Prepared:
    """Load ``dataset`` (``all`` split), cut it to the profile's size, put it on ``device``."""
    ds = data.load(dataset, "all", download=download)
    if profile == "quick" and len(ds) > QUICK_MAX_SAMPLES:
        ds = ds.subset(QUICK_MAX_SAMPLES, seed=0)
    if config.smoke_scale() and len(ds) > SMOKE_MAX_SAMPLES:     # a plumbing check, not a result
        ds = ds.subset(SMOKE_MAX_SAMPLES, seed=0)
    return Prepared(dataset, ds.inputs(device), ds.labels.numpy(), profile, device)


def _kmeans(Z: torch.Tensor, seed: int, n_init: int = 10) -> np.ndarray:
    from .studies import kmeans_labels

    return kmeans_labels(Z, n_init, seed, n_clusters=N_CLUSTERS)      # in float64


def _scores(y: np.ndarray, labels, seconds: float, samples: float = 0.0, **extra) -> dict:
    out = metrics.evaluate(y, np.asarray(labels))
    out["seconds"] = seconds
    out["train_samples_per_s"] = samples / seconds if samples and seconds > 0 else None
    out.update(extra)
    return out


# -- the runners --------------------------------------------------------------------------------


def run_kmeans(p: Prepared, seed: int, cache: dict) -> dict:
    """k-means (10 restarts, k-means++) on raw pixels."""
    t0 = time.perf_counter()
    labels = _kmeans(p.X, seed)
    return _scores(p.y, labels, time.perf_counter() - t0)


def run_pca_kmeans(p: Prepared, seed: int, cache: dict) -> dict:
    """k-means on the first 10 principal components (chapter 1)."""
    from .pca import PCA

    t0 = time.perf_counter()
    Z = PCA(N_CLUSTERS).fit(p.X).transform(p.X)
    labels = _kmeans(Z, seed)
    return _scores(p.y, labels, time.perf_counter() - t0)


def run_ae_kmeans(p: Prepared, seed: int, cache: dict) -> dict:
    """k-means on the 10-D code of chapter 1's nonlinear autoencoder (784-512-128-10, ELU)."""
    from . import autoencoders as ae

    s = config.schedule("pca_ae", p.profile)
    t0 = time.perf_counter()
    config.seed_everything(seed)
    sizes = (784, *s.get("hidden", (512, 128)), N_CLUSTERS)
    model = ae.MLPAutoencoder(sizes, hidden="elu", output="sigmoid").to(p.device)
    model.init_output_bias(p.X)   # start the decoder at the mean image, as chapter 1 does
    h = ae.train_autoencoder(model, p.X, num_epochs=s["num_epochs"], batch_size=s["batch_size"],
                             lr=s["lr"], lr_schedule=s.get("lr_schedule"), seed=seed,
                             desc=f"AE seed {seed}")
    labels = _kmeans(ae.encode(model, p.X), seed, s.get("kmeans_n_init", 10))
    samples = len(h["epoch"]) * len(p.X)
    return _scores(p.y, labels, time.perf_counter() - t0, samples)


def _stack(p: Prepared, seed: int, cache: dict):
    """Chapter 2's stack for this seed, trained once per (dataset, seed) and shared with DEC."""
    from . import autoencoders as ae

    key = ("stack", p.name, seed)
    if key not in cache:
        s = config.schedule("sdae", p.profile)
        t0 = time.perf_counter()
        model, hist = ae.train_stack(p.X, s, seed=seed)
        seconds = time.perf_counter() - t0
        epochs = sum(len(h["epoch"]) for h in hist["layers"]) + len(hist["finetune"]["epoch"])
        cache[key] = (model, seconds, epochs * len(p.X))
    return cache[key]


def run_sdae_kmeans(p: Prepared, seed: int, cache: dict) -> dict:
    """k-means on the 10-D embedding of chapter 2's stacked denoising autoencoder."""
    from . import autoencoders as ae

    model, stack_seconds, samples = _stack(p, seed, cache)
    t0 = time.perf_counter()
    labels = _kmeans(ae.encode(model, p.X), seed)
    seconds = stack_seconds + time.perf_counter() - t0
    return _scores(p.y, labels, seconds, samples, pretrain_seconds=stack_seconds)


def run_dec(p: Prepared, seed: int, cache: dict) -> dict:
    """DEC (chapter 4) from chapter 2's stack; ``seconds`` counts the pretraining too."""
    from . import dec

    stack, stack_seconds, _ = _stack(p, seed, cache)
    s = config.schedule("dec", p.profile)
    keys = ("batch_size", "lr", "momentum", "update_interval", "tol", "max_steps",
            "kmeans_restarts")
    t0 = time.perf_counter()
    model = dec.DEC(stack.encoder, N_CLUSTERS).to(p.device)
    hist = dec.train_dec(model, p.X, None, seed=seed, desc=f"DEC seed {seed}",
                         **{k: s[k] for k in keys if k in s})
    labels = model.predict(p.X)
    stage = time.perf_counter() - t0
    samples = hist.steps * s["batch_size"]
    return _scores(p.y, labels.cpu().numpy(), stack_seconds + stage, samples,
                   pretrain_seconds=stack_seconds, dec_seconds=stage,
                   dec_steps=hist.steps, stop_reason=hist.stop_reason)


def run_iic(p: Prepared, seed: int, cache: dict) -> dict:
    """IIC (chapter 5): the two-head conv net, scored on its main 10-cluster head."""
    from . import augment, iic, studies

    s = config.schedule("iic", p.profile)
    t0 = time.perf_counter()
    config.seed_everything(seed)
    model = iic.ClusterNet(s["channels"], k=N_CLUSTERS, overcluster_k=s["overcluster_k"],
                           global_pool=s["global_pool"]).to(p.device)
    images = p.X.reshape(-1, 1, 28, 28)
    hist = iic.train(model, images, None, augmentation=augment.named(s.get("augmentation", "all")),
                     num_epochs=s["num_epochs"], batch_size=s["batch_size"], lr=s["lr"],
                     alpha=studies.main_alpha(s), repeats=s.get("repeats", 1), eval_every=0, seed=seed,
                     desc=f"IIC seed {seed}")
    labels = iic.predict(model, images)[0]
    samples = len(hist["epoch"]) * len(images) * s.get("repeats", 1) * 2
    return _scores(p.y, labels.cpu().numpy(), time.perf_counter() - t0, samples)


def _n2d_autoencoder(p: Prepared, seed: int, cache: dict):
    """N2D's autoencoder (784-500-500-2000-10, ReLU) for this seed, trained once per (dataset,
    seed) and shared by ``n2d`` and ``idec`` (which trains a copy)."""
    from . import manifold

    key = ("n2d-ae", p.name, seed)
    if key not in cache:
        s = config.schedule("manifold", p.profile)
        t0 = time.perf_counter()
        model, h = manifold.n2d_autoencoder(p.X, s, seed=seed, desc=f"autoencoder seed {seed}")
        cache[key] = (model, time.perf_counter() - t0, len(h["epoch"]) * len(p.X))
    return cache[key]


def run_umap_gmm(p: Prepared, seed: int, cache: dict) -> dict:
    """UMAP on the raw pixels, then a Gaussian mixture (chapter 6, :mod:`dctutor.manifold`)."""
    from . import manifold

    s = config.schedule("manifold", p.profile)
    t0 = time.perf_counter()
    labels, _ = manifold.umap_gmm(p.X, N_CLUSTERS, n_neighbors=s["umap_n_neighbors"],
                                  min_dist=s["umap_min_dist"], seed=seed,
                                  gmm_n_init=s["gmm_n_init"])
    return _scores(p.y, labels, time.perf_counter() - t0)


def run_n2d(p: Prepared, seed: int, cache: dict) -> dict:
    """N2D: the autoencoder's 10-D codes, then UMAP, then a Gaussian mixture (chapter 6)."""
    from . import autoencoders as ae
    from . import manifold

    model, ae_seconds, samples = _n2d_autoencoder(p, seed, cache)
    s = config.schedule("manifold", p.profile)
    t0 = time.perf_counter()
    labels, _ = manifold.umap_gmm(ae.encode(model, p.X), N_CLUSTERS,
                                  n_neighbors=s["umap_n_neighbors"], min_dist=s["umap_min_dist"],
                                  seed=seed, gmm_n_init=s["gmm_n_init"])
    return _scores(p.y, labels, ae_seconds + time.perf_counter() - t0, samples,
                   pretrain_seconds=ae_seconds)


def _dec_from_n2d(p: Prepared, seed: int, cache: dict, *, keep_decoder: bool, desc: str,
                  **train) -> dict:
    """DEC's trainer on a copy of N2D's autoencoder for this seed (``n2d`` keeps the original).

    The start and step budget are the ``"manifold"`` schedule's (``idec_update_interval``,
    ``idec_tol``, ``idec_max_steps``); ``train`` holds the optimiser's settings (``batch_size``
    included) and, with ``keep_decoder``, IDEC's ``gamma``.
    """
    import copy

    from . import dec

    base, ae_seconds, _ = _n2d_autoencoder(p, seed, cache)
    s = config.schedule("manifold", p.profile)
    t0 = time.perf_counter()
    net = copy.deepcopy(base)
    model = dec.DEC(net.encoder, N_CLUSTERS, embedding_dim=net.code_size).to(p.device)
    hist = dec.train_dec(model, p.X, None, decoder=net.decoder if keep_decoder else None,
                         update_interval=s["idec_update_interval"], tol=s["idec_tol"],
                         max_steps=s["idec_max_steps"], kmeans_restarts=s["kmeans_restarts"],
                         seed=seed, desc=desc, **train)
    labels = model.predict(p.X)
    stage = time.perf_counter() - t0
    extra = {"reconstruction": hist.last("reconstruction")} if keep_decoder else {}
    return _scores(p.y, labels.cpu().numpy(), ae_seconds + stage,
                   hist.steps * train["batch_size"], pretrain_seconds=ae_seconds,
                   dec_seconds=stage, dec_steps=hist.steps, stop_reason=hist.stop_reason, **extra)


def run_dec_ae(p: Prepared, seed: int, cache: dict) -> dict:
    """DEC from N2D's end-to-end autoencoder (chapter 6), IDEC's start, with DEC's own optimiser.

    The reference implementation's recipe (DEC-keras pretrains end to end, not layer-wise): the
    same start and step budget as ``idec``, SGD with the ``"dec"`` schedule's learning rate,
    momentum and batch size, and no decoder — so ``dec-ae`` against ``dec`` shows what the start
    is worth.
    """
    d = config.schedule("dec", p.profile)
    return _dec_from_n2d(p, seed, cache, keep_decoder=False, desc=f"DEC (end-to-end AE) seed {seed}",
                         lr=d["lr"], momentum=d["momentum"], batch_size=d["batch_size"])


def run_idec(p: Prepared, seed: int, cache: dict) -> dict:
    """IDEC (Guo et al. 2017): DEC with the decoder kept, L_rec + γ L_KL, from N2D's autoencoder."""
    s = config.schedule("manifold", p.profile)
    return _dec_from_n2d(p, seed, cache, keep_decoder=True, desc=f"IDEC seed {seed}",
                         gamma=s["idec_gamma"], optimizer=s["idec_optimizer"], lr=s["idec_lr"],
                         batch_size=s["idec_batch_size"])


RUNNERS: dict[str, Callable[[Prepared, int, dict], dict]] = {
    "kmeans": run_kmeans,
    "pca-kmeans": run_pca_kmeans,
    "ae-kmeans": run_ae_kmeans,
    "sdae-kmeans": run_sdae_kmeans,
    "dec": run_dec,
    "iic": run_iic,
    "umap-gmm": run_umap_gmm,
    "n2d": run_n2d,
    "dec-ae": run_dec_ae,
    "idec": run_idec,
}


# -- running and summarising ----------------------------------------------------------------------


def versions() -> dict[str, str]:
    """Versions of Python and the libraries a result depends on."""
    import scipy
    import sklearn

    from . import __version__

    out = {"python": platform.python_version(), "dctutor": __version__, "torch": torch.__version__,
           "numpy": np.__version__, "scipy": scipy.__version__, "scikit-learn": sklearn.__version__}
    try:
        import torchvision

        out["torchvision"] = torchvision.__version__
    except Exception:  # torchvision is optional for every runner
        pass
    try:
        import umap

        out["umap-learn"] = umap.__version__
    except Exception:  # only the manifold methods need it
        pass
    return out


def run(method: str, p: Prepared, seed: int, cache: dict | None = None) -> dict:
    """One run of ``method`` with ``seed``: the result row written to JSON and the tables."""
    if method not in RUNNERS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    config.seed_everything(seed)
    result = RUNNERS[method](p, seed, cache if cache is not None else {})
    return {"method": method, "dataset": p.name, "profile": p.profile, "seed": seed,
            **result, "device": config.device_name(p.device), "versions": versions(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def summarise(rows: list[dict]) -> list[dict]:
    """One row per (dataset, method): mean ± std of acc/nmi/ari, mean seconds and throughput."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["method"]), []).append(r)
    out = []
    for (dataset, method), rs in groups.items():
        row = {"dataset": dataset, "method": method, "profile": rs[0]["profile"], "runs": len(rs)}
        for key in ("acc", "nmi", "ari", "seconds"):
            row[f"{key}_mean"], row[f"{key}_std"] = mean_std([r[key] for r in rs])
        tput = [r["train_samples_per_s"] for r in rs if r.get("train_samples_per_s")]
        row["train_samples_per_s"] = float(np.mean(tput)) if tput else None
        row["device"] = rs[0]["device"]
        out.append(row)
    return out


def format_pm(mean: float, std: float, scale: float = 100.0) -> str:
    """``91.2 ± 1.3`` (percent points by default)."""
    return f"{mean * scale:.1f} ± {std * scale:.1f}"


def markdown_table(summary: list[dict]) -> str:
    """The summary as a Markdown table (ACC/NMI/ARI in percent)."""
    lines = ["| dataset | method | runs | ACC % | NMI % | ARI % | seconds / run | train samples/s |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in summary:
        tput = f"{r['train_samples_per_s']:,.0f}" if r["train_samples_per_s"] else "–"
        lines.append(
            f"| {r['dataset']} | {r['method']} | {r['runs']} | {format_pm(r['acc_mean'], r['acc_std'])} | "
            f"{format_pm(r['nmi_mean'], r['nmi_std'])} | {format_pm(r['ari_mean'], r['ari_std'])} | "
            f"{r['seconds_mean']:.1f} | {tput} |")
    return "\n".join(lines)


def finished_runs(out_dir: str | Path, profile: str) -> dict[tuple[str, str, int], dict]:
    """The runs already in ``out_dir/runs.json``, keyed by (dataset, method, seed).

    A benchmark rewrites that file after every run, so an interrupted one resumes from here.
    Raises ValueError when the folder holds runs of another profile.
    """
    path = Path(out_dir) / "runs.json"
    if not path.is_file():
        return {}
    rows = json.loads(path.read_text()).get("runs", [])
    other = {r["profile"] for r in rows} - {profile}
    if other:
        raise ValueError(f"{path} holds runs of profile {', '.join(sorted(other))}, not {profile}; "
                         "choose another --out folder")
    return {(r["dataset"], r["method"], int(r["seed"])): r for r in rows}


def summary_line(row: dict) -> str:
    """One finished run in one line."""
    return (f"{row['method']:<11} {row['dataset']:<13} seed {row['seed']:<3} "
            f"ACC {row['acc']:.4f}  NMI {row['nmi']:.4f}  ARI {row['ari']:.4f}  "
            f"{row['seconds']:.1f} s  [{row['profile']}, {row['device']}]")


def run_resumable(prepared: Sequence[Prepared], methods: Sequence[str], seeds: int,
                  out_dir: str | Path, command: str,
                  log: Callable[[str], None] = print) -> tuple[list[dict], dict[str, Path]]:
    """Every method × seed on every prepared dataset, skipping runs already in ``out_dir``.

    ``runs.json`` and the summaries are rewritten after every finished run, so an interrupted
    benchmark resumes where it stopped. Returns all rows (old and new) and the written paths.
    Raises ValueError when ``out_dir`` holds runs of another profile.
    """
    profiles = {p.profile for p in prepared}
    if len(profiles) > 1:
        raise ValueError(f"one profile per benchmark folder, got {sorted(profiles)}")
    done = finished_runs(out_dir, next(iter(profiles))) if prepared else {}
    rows = list(done.values())
    for p in prepared:
        cache: dict = {}
        for method in methods:
            for seed in range(seeds):
                if (p.name, method, seed) in done:
                    log(f"{p.name} {method} seed {seed}: already in {out_dir}")
                    continue
                row = run(method, p, seed, cache)
                rows.append(row)
                log(summary_line(row))
                write_results(out_dir, rows, command)      # each finished run on disk
    return rows, write_results(out_dir, rows, command) if rows else {}


RESULTS_URL = "https://raw.githubusercontent.com/dctutor/dctutor/main/results"


def committed_results(name: str, roots=("../results", "results"), download: bool = True) -> dict | None:
    """The committed bench output ``results/<name>/runs.json`` (``meta``, ``runs``, ``summary``).

    Read from the first of ``roots`` that has it (a chapter runs in ``book/``, a script at the
    repository root); else, when ``download``, fetched from the repository on GitHub (Colab
    opens one notebook without the repository). ``None`` when it is nowhere.
    """
    for root in roots:
        path = Path(root) / name / "runs.json"
        if path.is_file():
            return json.loads(path.read_text())
    if download:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{RESULTS_URL}/{name}/runs.json", timeout=20) as r:
                return json.loads(r.read())
        except OSError:
            return None
    return None


def write_results(out_dir: str | Path, rows: list[dict], command: str) -> dict[str, Path]:
    """Write ``runs.json`` (every run), ``summary.csv`` and ``summary.md`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(rows)
    previous = out / "runs.json"
    old = json.loads(previous.read_text())["meta"] if previous.is_file() else {}
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    for r in rows:                      # runs from before per-run dates were kept
        r.setdefault("date", old.get("date", today))
    dates = sorted({r["date"] for r in rows}) or [today]
    commands = list(dict.fromkeys([*old.get("commands", [old["command"]] if "command" in old else []),
                                   command]))
    meta = {"command": command, "commands": commands, "date": dates[-1],
            "dates": dates, "device": rows[0]["device"] if rows else None,
            "devices": sorted({r["device"] for r in rows}), "versions": versions(),
            "profile": rows[0]["profile"] if rows else None}
    paths = {"json": out / "runs.json", "csv": out / "summary.csv", "md": out / "summary.md"}
    paths["json"].write_text(json.dumps({"meta": meta, "runs": rows, "summary": summary},
                                        indent=1, default=_jsonable))
    with open(paths["csv"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(summary[0]) if summary else ["dataset"])
        writer.writeheader()
        writer.writerows(summary)
    versions_line = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    ran = "; ".join(f"`{c}`" for c in commands)
    paths["md"].write_text(
        f"Measured {when} on {', '.join(meta['devices'])} with {ran} "
        f"(profile `{meta['profile']}`; last run with {versions_line}).\n\n"
        f"{markdown_table(summary)}\n")
    return paths


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
