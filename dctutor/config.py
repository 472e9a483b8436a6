"""Profiles, device choice, seeding and the one table of schedules every chapter reads.

Three profiles (see the book's introduction, "Profiles"):

* ``quick`` — the embedded 5,000-digit MNIST sample and short schedules; every chapter runs in a
  few minutes on two CPU cores. CI and the notebook tests use it.
* ``laptop`` — the whole 70,000-image datasets with short schedules chosen for accuracy per
  minute, sized for about 10 minutes a chapter on two CPU cores (not yet measured end to end).
  Same code paths as ``full``; only the counts (and IIC's trunk and warm-up) differ.
* ``full`` — the whole 70,000-image datasets and paper-scale schedules; meant for a GPU.

``DCTUTOR_PROFILE`` picks one; unset, it is ``full`` when CUDA is available and ``quick``
otherwise. Chapters never branch on anything else: they read their numbers from
:func:`schedule`.
"""

from __future__ import annotations

import copy
import os
import platform
import random
from dataclasses import dataclass, field

import numpy as np
import torch

PROFILES = ("quick", "laptop", "full")

# Chapter 4's deliberate collapse (the Q&A question it reproduces) and its fixes: the question's setup is
# reproduced as asked, so it is the same in both profiles; only the step budget differs.
COLLAPSE_SETUP: dict = dict(
    collapse_dims=(784, 32, 32, 256, 10),
    collapse_pretrain_epochs=10,
    collapse_pretrain_lr=1.0,       # SGD with the "dec" section's momentum
    collapse_lr=1.0,
    collapse_update_interval=10,
    fixed_pretrain_optimizer="adam",
    fixed_pretrain_lr=1e-3,
    fixed_pretrain_epochs=50,
)

# One table for the whole book: every epoch count, batch size and subset size a chapter uses.
# Keys are chapter sections; values are plain dicts so a chapter can print what it runs.
SCHEDULES: dict[str, dict[str, dict]] = {
    "quick": {
        # Chapter 1: PCA against linear and nonlinear autoencoders.
        "pca_ae": dict(
            dataset="mnist-5k",
            max_k=50,                  # PCA error curve for k = 1 … max_k
            linear_code=2,             # the linear autoencoder's bottleneck
            linear_batch_size=128,
            linear_lr=3e-3,
            linear_num_epochs=80,
            hidden=(512, 128),         # 784-512-128-code-128-512-784, ELU, sigmoid output
            codes=(2, 10),
            batch_size=128,
            lr=2e-3,
            num_epochs=25,
            lr_schedule="cosine",      # both autoencoders: Adam, lr decayed to 0 along a cosine
            kmeans_n_init=10,
            scatter_points=1000,
        ),
        # Chapter 2: stacked denoising autoencoder.
        "sdae": dict(
            dataset="mnist-5k",
            dims=(784, 500, 500, 2000, 10),
            dropout=0.2,
            optimizer="adam",   # the source's SGD lr 0.1 is tied to a summed loss; see chapter 2
            lr=1e-3,
            momentum=0.9,       # used by optimizer="sgd" only
            batch_size=64,      # small batches: more steps from the few epochs CPU time allows
            layer_num_epochs=2,
            finetune_num_epochs=16,
            kmeans_restarts=10,
            tsne_points=1500,
        ),
        # Chapter 4: DEC.
        "dec": dict(
            dataset="mnist-5k",
            batch_size=256,
            lr=0.01,                  # the reference implementation's, as in the full profile
            momentum=0.9,
            update_interval=20,       # one epoch of the sample between target refreshes
            tol=0.001,
            max_steps=600,            # 30 epochs of the sample
            kmeans_restarts=20,
            seeds=1,
            collapse_fraction=0.9,    # the guard: one cluster holding this share is a collapse,
            dead_fraction=0.1,        # and so is a cluster under this share of N/K points
            tsne_points=1000,
            # Fashion-MNIST (section "Fashion-MNIST"): a subset of the embedded sample (no
            # download) and a shorter stack schedule
            fashion_dataset="fashion-mnist-5k",
            fashion_subset=3000,
            fashion_layer_num_epochs=2,
            fashion_finetune_num_epochs=16,
            # "When DEC fails": the Q&A question's setup, on the same Fashion-MNIST points
            **COLLAPSE_SETUP,
            collapse_max_steps=600,
        ),
        # Chapter 5: IIC.
        "iic": dict(
            dataset="mnist-5k",
            channels=(16, 32, 64),      # a small trunk: the 3 x 3 x 64 map feeds the heads
            global_pool=False,          # flattened, not averaged (see iic.ClusterNet)
            augmentation="all",
            batch_size=100,
            lr=2e-3,
            num_epochs=12,
            alpha=1.0,                  # see "The entropy weight" in chapter 5
            warmup_epochs=0,            # main run: α = alpha throughout (no warm-up)
            alpha_after_warmup=10.0,    # used only with warmup_epochs > 0
            overcluster_k=50,
            repeats=1,
            eval_every=1,
            kmeans_n_init=10,
            collapse_subset=2000,
            collapse_num_epochs=3,
            ablation_subset=2000,
            ablation_num_epochs=10,
            ablation_alphas=(1.0, 10.0),
            ablation_warmup_epochs=5,   # the warm-up run: alpha = 1 for 5 epochs, then 10
        ),
        # Chapter 6: does it need to be deep? (UMAP + GMM, N2D, IDEC, choosing K, own data)
        "manifold": dict(
            dataset="mnist-5k",
            umap_n_neighbors=20,        # N2D's; the neighbourhood UMAP keeps
            umap_min_dist=0.0,          # pack neighbours tightly: we cluster, not draw
            gmm_n_init=5,               # keep the GMM fit of highest likelihood (no labels used)
            ae_dims=(784, 500, 500, 2000, 10),   # N2D's (and DEC's) autoencoder, ReLU
            ae_batch_size=256,
            ae_lr=1e-3,
            ae_num_epochs=40,           # 800 Adam steps on the 5,000 digits
            idec_gamma=0.1,             # Guo et al. 2017: L_rec + 0.1 L_KL
            idec_optimizer="adam",
            idec_lr=1e-3,
            idec_batch_size=256,
            idec_update_interval=20,    # one pass over the sample between target refreshes
            idec_tol=0.001,
            idec_max_steps=600,
            compare_max_steps=600,      # the page's DEC-against-IDEC comparison (the bench: above)
            kmeans_restarts=20,
            choose_ks=(4, 6, 8, 9, 10, 11, 12, 14, 16),   # K tried without labels
            stability_seeds=3,
            knn_points=2000,            # points whose 10 nearest neighbours are compared
            picture_points=5000,        # points in the 2-D UMAP picture
            seed_points=5000,           # points the extra UMAP seeds are run on
            digits_n_neighbors=10,      # "your own data": scikit-learn's 1,797 8 x 8 digits
        ),
    },
    # All 70,000 images, schedules cut for accuracy per minute on 2 CPU cores (see each
    # chapter's run-time box for what they cost against the paper-scale ``full`` run).
    "laptop": {
        "pca_ae": dict(
            dataset="mnist",
            max_k=50,
            linear_code=2,
            linear_batch_size=128,
            linear_lr=3e-3,
            linear_num_epochs=5,
            hidden=(512, 128),
            codes=(2, 10),
            batch_size=128,
            lr=2e-3,
            num_epochs=10,             # 5.5k Adam steps a code size; full: 25 epochs
            lr_schedule="cosine",
            kmeans_n_init=10,
            scatter_points=5000,
        ),
        "sdae": dict(
            dataset="mnist",
            dims=(784, 500, 500, 2000, 10),
            dropout=0.2,
            optimizer="adam",
            lr=1e-3,
            momentum=0.9,
            batch_size=256,
            layer_num_epochs=3,       # 820 steps a layer; full: 30 epochs
            finetune_num_epochs=25,   # 6.8k steps; full: 200 epochs
            kmeans_restarts=20,
            tsne_points=3000,
        ),
        "dec": dict(
            dataset="mnist",
            batch_size=256,
            lr=0.01,
            momentum=0.9,
            update_interval=140,
            tol=0.001,
            max_steps=5000,           # full: 20,000
            kmeans_restarts=20,
            seeds=1,                  # one DEC run in the chapter; the bench repeats seeds
            collapse_fraction=0.9,
            dead_fraction=0.1,
            tsne_points=2000,
            fashion_dataset="fashion-mnist",
            fashion_subset=20000,     # the chapter's Fashion-MNIST section; the bench uses all
            fashion_layer_num_epochs=3,
            fashion_finetune_num_epochs=25,
            **COLLAPSE_SETUP,
            collapse_max_steps=2000,
        ),
        "iic": dict(
            dataset="mnist",
            channels=(16, 32, 64),      # the quick profile's small trunk
            global_pool=False,
            augmentation="all",
            batch_size=100,
            lr=2e-3,
            num_epochs=12,              # about 3.5 minutes on 2 CPU cores; full: 100 epochs
            alpha=1.0,
            # the main run warms up: α = 1 for 2 epochs, then 10 (chapter 5, "The entropy
            # weight"). Measured on all 70,000 digits (per-epoch ACC, seeds 1 and 2): 91.8 % and
            # 86.7 % after 6 epochs, 96.1 % and 87.5 % after 8, 96.7 % and 93.3 % after 12;
            # results/laptop-mnist has the 3-seed bench of this schedule
            warmup_epochs=2,
            alpha_after_warmup=10.0,
            overcluster_k=50,
            repeats=1,
            eval_every=1,
            kmeans_n_init=10,
            collapse_subset=5000,
            collapse_num_epochs=3,
            ablation_subset=5000,
            ablation_num_epochs=8,
            ablation_alphas=(1.0, 10.0),
            ablation_warmup_epochs=4,
        ),
        "manifold": None,             # "full"'s: cheap enough on a CPU (set below)
    },
    "full": {
        "pca_ae": dict(
            dataset="mnist",
            max_k=50,
            linear_code=2,
            linear_batch_size=128,
            linear_lr=3e-3,
            linear_num_epochs=10,
            hidden=(512, 128),
            codes=(2, 10),
            batch_size=128,            # the source's
            lr=2e-3,
            num_epochs=25,
            lr_schedule="cosine",
            kmeans_n_init=10,
            scatter_points=5000,
        ),
        "sdae": dict(
            dataset="mnist",
            dims=(784, 500, 500, 2000, 10),
            dropout=0.2,
            optimizer="adam",
            lr=1e-3,
            momentum=0.9,
            batch_size=256,     # 274 steps an epoch on 70k digits
            layer_num_epochs=30,      # 8.2k steps a layer
            # 54.8k steps; the reference implementation (DEC-keras) trains its autoencoder end
            # to end for 300 epochs at batch 256, about 82k steps
            finetune_num_epochs=200,
            kmeans_restarts=20,
            tsne_points=5000,
        ),
        "dec": dict(
            dataset="mnist",
            batch_size=256,
            lr=0.01,                  # the reference implementation's DEC stage, unchanged
            momentum=0.9,
            update_interval=140,
            tol=0.001,
            max_steps=20000,
            kmeans_restarts=20,
            seeds=5,
            collapse_fraction=0.9,
            dead_fraction=0.1,
            tsne_points=2000,
            fashion_dataset="fashion-mnist",
            fashion_subset=None,      # all 70,000
            fashion_layer_num_epochs=30,
            fashion_finetune_num_epochs=200,
            **COLLAPSE_SETUP,
            collapse_max_steps=5000,
        ),
        "iic": dict(
            dataset="mnist",
            channels=(32, 64, 128, 256),  # the source's trunk: four blocks, then
            global_pool=True,             # global average pooling of the last 3 x 3 map
            augmentation="all",
            batch_size=1000,              # the source's optimiser and schedule: Adam 1e-4,
            lr=1e-4,                      # batches of 1,000, 100 epochs
            num_epochs=100,
            alpha=1.0,                    # the IIC paper's; chapter 5 tests the source's 10
            warmup_epochs=0,
            alpha_after_warmup=10.0,
            overcluster_k=50,
            repeats=1,
            eval_every=5,
            kmeans_n_init=10,
            collapse_subset=20000,
            collapse_num_epochs=3,
            ablation_subset=20000,
            ablation_num_epochs=10,
            ablation_alphas=(1.0, 10.0),
            ablation_warmup_epochs=5,
        ),
        "manifold": dict(
            dataset="mnist",
            umap_n_neighbors=20,
            umap_min_dist=0.0,
            gmm_n_init=5,
            ae_dims=(784, 500, 500, 2000, 10),
            ae_batch_size=256,
            ae_lr=1e-3,
            # 5.5k Adam steps, about 3.5 minutes on 2 CPU cores; N2D trains 1,000 epochs (274k)
            ae_num_epochs=20,
            idec_gamma=0.1,
            idec_optimizer="adam",
            idec_lr=1e-3,
            idec_batch_size=256,
            idec_update_interval=140,   # IDEC's and DEC's on MNIST
            idec_tol=0.001,
            idec_max_steps=2800,        # 10 epochs of the 70,000 images
            compare_max_steps=2800,
            kmeans_restarts=20,
            choose_ks=(4, 6, 8, 9, 10, 11, 12, 14, 16),
            stability_seeds=3,
            knn_points=2000,
            picture_points=10000,
            seed_points=10000,          # two more UMAPs of all 70,000 would cost ~4 min
            digits_n_neighbors=10,
        ),
    },
}


# Chapter 6's methods cost minutes on a CPU at full scale: the laptop profile runs them exactly as
# the full one does (one schedule for the bench's methods, one set of 70k results). Only the
# illustrations of the chapter's first page are cut, so that the page runs in about ten minutes
# on two CPU cores: smaller samples for the picture and the extra UMAP seeds, and a DEC-against-
# IDEC comparison of 700 steps (5 target refreshes) instead of the bench's 2,800. Measured on all
# 70,000 digits (seed 0): IDEC's accuracy was 84.3 % after 700 steps, 84.6 % after 1,400 and
# 84.7 % after 2,800; DEC's decoder error had grown ninefold by 1,400 steps.
MANIFOLD_PAGE_KEYS = ("picture_points", "seed_points", "compare_max_steps")
SCHEDULES["laptop"]["manifold"] = dict(SCHEDULES["full"]["manifold"], picture_points=5000,
                                       seed_points=5000, compare_max_steps=700)


def profile() -> str:
    """The active profile, ``"quick"``, ``"laptop"`` or ``"full"``, from ``$DCTUTOR_PROFILE``.

    Unset or empty: ``"full"`` when CUDA is available, else ``"quick"``.
    Any other value raises :class:`ValueError` naming the allowed ones.
    """
    value = os.environ.get("DCTUTOR_PROFILE", "").strip().lower()
    if not value:
        return "full" if torch.cuda.is_available() else "quick"
    if value not in PROFILES:
        raise ValueError(
            f"DCTUTOR_PROFILE={os.environ['DCTUTOR_PROFILE']!r} is not a profile; "
            f"use one of {', '.join(PROFILES)} (or leave it unset: full on a GPU, quick otherwise)"
        )
    return value


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def device(name: str | None = None) -> torch.device:
    """The device to compute on: ``name`` or ``$DCTUTOR_DEVICE`` if given, else cuda, mps, cpu.

    An explicitly requested device that is not available raises :class:`ValueError`
    (never a silent fall-back to another device).
    """
    requested = name if name is not None else os.environ.get("DCTUTOR_DEVICE", "").strip()
    if not requested:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(requested)
    except (RuntimeError, ValueError) as err:
        raise ValueError(
            f"device {requested!r} is not a torch device name; use cpu, cuda, cuda:N or mps"
        ) from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {requested!r} was requested but CUDA is not available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {requested!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif dev.type == "mps" and not _mps_available():
        raise ValueError(f"device {requested!r} was requested but MPS is not available here")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {requested!r} is not supported; use cpu, cuda, cuda:N or mps")
    return dev


def device_name(dev: torch.device | str | None = None) -> str:
    """A human-readable name of the device: the GPU model, or the CPU with its thread count."""
    dev = torch.device(dev) if dev is not None else device()
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    if dev.type == "mps":
        return "Apple MPS"
    cpu = platform.processor() or platform.machine()
    return f"CPU ({cpu}, {torch.get_num_threads()} threads)"


def seed_everything(seed: int = 0) -> int:
    """Seed Python's, NumPy's and torch's generators (all devices). Returns ``seed``."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return seed


def schedule(section: str | None = None, profile_name: str | None = None) -> dict:
    """The schedule table of the active profile (a copy), or one chapter's ``section`` of it.

    >>> schedule("sdae", "full")["dataset"]
    'mnist'
    """
    name = profile_name if profile_name is not None else profile()
    if name not in SCHEDULES:
        raise ValueError(f"unknown profile {name!r}; use one of {', '.join(PROFILES)}")
    table = SCHEDULES[name]
    if section is not None and section not in table:
        raise ValueError(f"no schedule section {section!r}; sections are {', '.join(table)}")
    if smoke_scale():
        from .smoke import cap

        table = {sec: cap(entries) for sec, entries in table.items()}
    return copy.deepcopy(table if section is None else table[section])


def smoke_scale() -> bool:
    """True when ``$DCTUTOR_SMOKE`` is set (``1``): every schedule's counts are cut down to a
    handful of steps (:data:`dctutor.smoke.CAPS`), shapes and batch sizes kept — for checking
    that a profile runs end to end, e.g. ``python -m dctutor full-run --scale smoke`` on a CPU.
    The numbers such a run prints mean nothing, and the chapters' hidden checks may fail."""
    return os.environ.get("DCTUTOR_SMOKE", "").strip() not in ("", "0")


@dataclass
class Setup:
    """What a chapter's setup cell chose: profile, device, seed and its schedule section."""

    profile: str
    device: torch.device
    seed: int
    schedule: dict = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [
            f"profile : {self.profile}",
            f"device  : {self.device} — {device_name(self.device)}",
            f"seed    : {self.seed}",
            f"torch   : {torch.__version__}",
        ]
        if self.schedule:
            lines.append("schedule: " + ", ".join(f"{k}={v}" for k, v in self.schedule.items()))
        if smoke_scale():
            lines.append("SMOKE SCALE ($DCTUTOR_SMOKE): counts cut to a few steps; results mean nothing")
        return "\n".join(lines)


def setup(section: str | None = None, seed: int = 0, verbose: bool = True) -> Setup:
    """The preamble every chapter runs: pick profile and device, seed everything, print them.

    ``section`` names the chapter's part of the schedule table (``"pca_ae"``, ``"sdae"``,
    ``"dec"``, ``"iic"``); its entries are returned in ``Setup.schedule``.
    """
    chosen = Setup(
        profile=profile(),
        device=device(),
        seed=seed_everything(seed),
        schedule=schedule(section) if section else {},
    )
    if verbose:
        print(chosen)
    return chosen
