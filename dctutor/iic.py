"""Invariant Information Clustering (IIC): the loss, a two-head conv net and its trainer.

Chapter 5 derives everything here. IIC (Ji, Henriques and Vedaldi, 2019) trains a network
``Φ`` whose softmax output ``z = Φ(x)`` is a soft cluster assignment, by maximising the mutual
information ``I(z; z′)`` between the assignments of an image ``x`` and of a randomly perturbed
copy ``x′`` of it. Over a batch, the C × C joint distribution of the pair is estimated as

    P = (1/N) Σ_n z_n z′_nᵀ,   symmetrised, floored at ε and renormalised,

and the loss is ``Σ_ij P_ij (α log P_i + α log P_j − log P_ij)``, which for ``α = 1`` is
``−I(z; z′)``. It reaches its minimum, −ln C, exactly when P is uniform and one-to-one — P = Π/C
for a symmetric permutation matrix Π: each cluster of one view determines the twin's cluster,
and all C clusters are used equally. Mutual information does not care how the twin's clusters
are named, so the diagonal P = I/C (twins always in the *same* cluster) is one of these optima,
the one training finds in practice (chapter 5 asks why).

* :func:`joint_distribution` and :func:`iic_loss` — the mathematics, pure functions;
* :func:`agreement_loss` — the naive alternative (cross-entropy between the views) that collapses;
* :class:`ClusterNet` — a conv trunk shared by a main head (K clusters) and an over-clustering
  head (more clusters than classes);
* :func:`train` — Adam on the mean of the heads' losses, augmentations drawn on the device;
* :func:`predict` — cluster labels of un-augmented images.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from . import metrics
from .augment import Augmentation, as_images
from .training import History, batches, check_finite

# Floor on the joint distribution's entries, so that log P stays finite. The source used 1e-7;
# with 50 clusters its 2,450 empty off-diagonal cells then shift the loss by about 4e-3 nats,
# so we floor lower: at 1e-10 the shift stays below 1e-5 nats.
EPS = 1e-10

__all__ = ["EPS", "joint_distribution", "iic_loss", "agreement_loss", "ClusterNet", "predict", "train",
           "entropy", "mutual_information"]


def _check_pair(p1: torch.Tensor, p2: torch.Tensor) -> None:
    for name, p in (("p1", p1), ("p2", p2)):
        if not isinstance(p, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor of probabilities, got {type(p).__name__}")
        if p.dim() != 2:
            raise ValueError(f"{name} must be N×C (one row of cluster probabilities per image), "
                             f"got shape {tuple(p.shape)}")
    if p1.shape != p2.shape:
        raise ValueError(f"p1 and p2 must have the same shape N×C, got {tuple(p1.shape)} "
                         f"and {tuple(p2.shape)}")
    if p1.shape[0] < 1:
        raise ValueError("p1 and p2 hold no rows: the batch is empty")
    if p1.shape[1] < 2:
        raise ValueError(f"need at least 2 clusters (columns), got {p1.shape[1]}")


def joint_distribution(p1: torch.Tensor, p2: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """The C × C joint distribution of the cluster assignments of two views.

    Args:
        p1, p2: N × C softmax outputs for the two views of the same N images.
        eps: entries below ``eps`` are raised to it before renormalising, so ``log P`` is finite.

    Returns:
        ``P`` (C × C, symmetric, entries ≥ about ``eps``, sums to 1): ``P[i, j]`` estimates the
        probability that an image lands in cluster i and its twin in cluster j.
    """
    _check_pair(p1, p2)
    P = p1.t() @ p2 / p1.shape[0]        # average outer product z zᵀ′ over the batch
    P = (P + P.t()) / 2                  # the views are interchangeable
    P = P.clamp_min(eps)
    return P / P.sum()


def iic_loss(p1: torch.Tensor, p2: torch.Tensor, alpha: float = 1.0, eps: float = EPS) -> torch.Tensor:
    """IIC's objective for one head: ``Σ_ij P_ij (α log P_i + α log P_j − log P_ij)``.

    Args:
        p1, p2: N × C softmax outputs of the two views (an image and its augmented twin).
        alpha: weight of the marginal-entropy terms. ``alpha = 1`` gives exactly ``−I(z; z′)``
            (in nats), minimal at ``−ln C`` for ``P = Π/C`` with ``Π`` a symmetric
            permutation matrix (the uniform diagonal is one such ``P``); larger ``alpha``
            pushes harder towards balanced clusters (minimum ``(1 − 2α) ln C``, same ``P``).
            The official IIC code has the same weight, ``lamb`` in ``IID_loss``.
        eps: floor on the entries of ``P`` (see :func:`joint_distribution`).

    Returns:
        a scalar tensor, differentiable with respect to ``p1`` and ``p2``.

    Raises:
        ValueError: ``p1`` and ``p2`` are not two N × C tensors of the same shape with C ≥ 2.
    """
    P = joint_distribution(p1, p2, eps)
    Pi = P.sum(dim=1, keepdim=True)      # marginal of the first view, C × 1
    Pj = P.sum(dim=0, keepdim=True)      # marginal of the second view, 1 × C
    return (P * (alpha * Pi.log() + alpha * Pj.log() - P.log())).sum()


def agreement_loss(p1: torch.Tensor, p2: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Plain agreement: the symmetric cross-entropy between the two views' assignments.

    ``−(1/2N) Σ_n (z_n · log z′_n + z′_n · log z_n)``. Zero whenever both views get the same
    one-hot assignment — including when *every* image gets the same one: it cannot tell a
    clustering from a collapse, which chapter 5 shows happening.
    """
    _check_pair(p1, p2)
    ce = (p1 * p2.clamp_min(eps).log()).sum(1) + (p2 * p1.clamp_min(eps).log()).sum(1)
    return -ce.mean() / 2


# ---------------------------------------------------------------------------------------------
# the network


class ClusterNet(nn.Module):
    """A conv trunk shared by two softmax heads: K clusters and an over-clustering head.

    The trunk is one block per entry of ``channels`` — 3 × 3 convolution, 2 × 2 max-pooling,
    batch norm, ReLU. Two ways to end it:

    * ``global_pool=False``: the last feature map, flattened, feeds the heads. With three blocks
      a 28 × 28 digit becomes a 3 × 3 map (28 → 14 → 7 → 3: the 2 × 2 pooling of a 7 × 7 map
      drops the last row and column), and keeping where a feature fired makes a small trunk
      learn much faster than averaging it away.
    * ``global_pool=True`` (the source's trunk): the last block does not max-pool; its feature
      map is averaged over all positions (global average pooling), so the heads see one value
      per channel. With four blocks: 28 → 14 → 7 → 3, then the 3 × 3 × ``channels[-1]`` map
      of the fourth block averaged to ``channels[-1]`` features.

    Each head is one linear layer and a softmax. ``overcluster_k = 0`` leaves out the second
    head.

    ``model(x)`` takes N × 1 × 28 × 28 (or N × 784) images and returns a tuple of N × K and
    N × overcluster_k probability tensors (one per head, main head first).
    """

    head_names: tuple[str, ...]

    def __init__(self, channels: Sequence[int] = (32, 64, 128, 256), k: int = 10,
                 overcluster_k: int = 50, in_channels: int = 1, image_size: int = 28,
                 global_pool: bool = False):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 1:
            raise ValueError(f"channels must be a non-empty list of positive widths, got {channels}")
        if k < 2 or overcluster_k < 0 or overcluster_k == 1:
            raise ValueError(f"need k ≥ 2 clusters and overcluster_k = 0 or ≥ 2, got {k}, {overcluster_k}")
        n_pools = len(channels) - 1 if global_pool else len(channels)
        if image_size >> n_pools < 1:
            raise ValueError(f"{n_pools} poolings shrink a {image_size}-pixel image to nothing")
        blocks, c_in = [], in_channels
        for i, c_out in enumerate(channels):
            # Max-pooling before batch norm and ReLU: the normalisation then works on a quarter of
            # the values (much cheaper on a CPU). Not the same function as the usual conv-BN-ReLU-
            # pool order (BN's statistics are taken after pooling, and max does not commute with
            # an affine map of negative scale), but a comparable block.
            pool = [nn.MaxPool2d(2)] if i < n_pools else []
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), *pool,
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            c_in = c_out
        if global_pool:
            blocks.append(nn.AdaptiveAvgPool2d(1))
        self.trunk = nn.Sequential(*blocks, nn.Flatten())
        side = 1 if global_pool else image_size >> n_pools   # each pooling halves the side
        features = c_in * side * side
        sizes = (k, overcluster_k) if overcluster_k else (k,)
        self.heads = nn.ModuleList(nn.Linear(features, s) for s in sizes)
        self.head_names = ("main", "over")[:len(sizes)]
        self.k, self.overcluster_k, self.channels = k, overcluster_k, channels
        self.image_size, self.global_pool = image_size, bool(global_pool)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = as_images(x, self.image_size)
        if x.device.type == "cpu":
            # oneDNN's CPU convolutions run about 1.5 times faster on channels-last tensors
            x = x.contiguous(memory_format=torch.channels_last)
        h = self.trunk(x)
        return tuple(torch.softmax(head(h), dim=1) for head in self.heads)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, k={self.k}, overcluster_k={self.overcluster_k}, "
                f"global_pool={self.global_pool}")


@torch.no_grad()
def predict(model: ClusterNet, X: torch.Tensor, batch_size: int = 1000,
            probabilities: bool = False) -> tuple[torch.Tensor, ...]:
    """Cluster labels (or probabilities) of un-augmented images, one tensor per head.

    Runs in eval mode (batch norm uses its running statistics) and restores the previous mode.
    """
    X = as_images(X)
    was_training = model.training
    model.eval()
    try:
        outs = [model(X[i:i + batch_size]) for i in range(0, X.shape[0], batch_size)]
    finally:
        model.train(was_training)
    per_head = [torch.cat([o[h] for o in outs]) for h in range(len(outs[0]))]
    return tuple(per_head if probabilities else [p.argmax(1) for p in per_head])


# ---------------------------------------------------------------------------------------------
# the trainer


def train(model: ClusterNet, X: torch.Tensor, y: torch.Tensor | None = None, *,
          augmentation: Augmentation, num_epochs: int, batch_size: int, lr: float,
          alpha: float | Callable[[int], float] = 1.0, repeats: int = 1, loss_fn: Callable | None = None,
          eval_every: int = 1, seed: int = 0, progress: bool = True,
          desc: str = "IIC") -> History:
    """Train ``model`` with IIC on images ``X`` (N × 784 or N × 1 × 28 × 28, on the model's device).

    Every step takes a minibatch, draws ``repeats`` augmented twins of every image on the device,
    runs the images and their twins through the network in one pass, and minimises
    the *mean over heads* of ``iic_loss(z, z′, alpha)`` with Adam. Averaging (rather than
    alternating heads epoch by epoch as the IIC paper does) lets every forward/backward pass
    through the trunk, the expensive part, update both heads: for the same compute each head gets
    twice as many updates.

    Args:
        y: labels, only for monitoring: ACC and NMI of the main head on un-augmented images.
        augmentation: an :mod:`dctutor.augment` augmentation applied to the second view.
        alpha: the weight of the marginal-entropy terms (see :func:`iic_loss`), or a function
            of the epoch (1, 2, …) returning it — e.g. a warm-up ``lambda e: 1.0 if e <= 3 else
            10.0``. Ignored when ``loss_fn`` is given.
        repeats: augmented twins per image, each paired with the image: more pairs per batch for
            the estimate of the joint distribution, at the cost of one forward pass per twin.
        loss_fn: ``(p1, p2) -> loss`` to use instead of ``iic_loss`` (e.g. ``agreement_loss``).
        eval_every: evaluate every this many epochs (and always after the last); 0 for only the
            last.
        seed: seeds the batch order and the augmentations (model weights are the caller's).

    Returns:
        a :class:`History` with, per epoch: ``epoch``, ``alpha``, ``loss`` (mean over heads),
        ``loss_main`` and ``loss_over``, ``P`` (the main head's joint distribution averaged over
        the epoch's batches, C × C nested lists), ``seconds`` (cumulative wall time); and at
        evaluated epochs ``eval_epoch``, ``acc``, ``nmi``, ``nmi_over``, ``cluster_sizes``,
        ``confidence`` (mean over images of the main head's largest probability: 1/C for
        hedging outputs, 1 for one-hot ones).

    Raises:
        TrainingDiverged: a logged loss is NaN or infinite.
    """
    if num_epochs < 1 or batch_size < 1 or repeats < 1:
        raise ValueError(f"num_epochs, batch_size and repeats must be ≥ 1, got "
                         f"{num_epochs}, {batch_size}, {repeats}")
    if lr <= 0:
        raise ValueError(f"the learning rate must be positive, got {lr}")
    if eval_every < 0:
        raise ValueError(f"eval_every must be ≥ 0, got {eval_every}")
    X = as_images(X)
    device = next(model.parameters()).device
    if X.device != device:
        raise ValueError(f"the images are on {X.device} but the model on {device}; move one of them")
    if y is not None and len(y) != X.shape[0]:
        raise ValueError(f"{X.shape[0]} images but {len(y)} labels")
    alpha_at = alpha if callable(alpha) else (lambda epoch: alpha)
    current = {"alpha": float(alpha_at(1))}
    if loss_fn is None:
        def loss_fn(p1, p2):
            return iic_loss(p1, p2, current["alpha"])

    order_gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator(device).manual_seed(seed + 1)
    if device.type == "cpu":
        model.to(memory_format=torch.channels_last)  # matches forward(); same values, faster
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history, names = History(), model.head_names
    k = model.heads[0].out_features
    start = time.perf_counter()

    bar = tqdm(range(1, num_epochs + 1), desc=desc, unit="epoch", disable=not progress, leave=True)
    for epoch in bar:
        current["alpha"] = float(alpha_at(epoch))
        if not (current["alpha"] > 0 and math.isfinite(current["alpha"])):
            raise ValueError(f"alpha must be a positive number, got {current['alpha']} at epoch {epoch}")
        model.train()
        loss_sum = torch.zeros(len(names), device=device)
        P_sum = torch.zeros(k, k, device=device)
        steps = 0
        for idx in batches(X.shape[0], batch_size, device, generator=order_gen):
            x = X[idx]
            n = x.shape[0]
            # each image once as it is, and `repeats` augmented twins of it
            x_aug = augmentation(x.repeat(repeats, 1, 1, 1) if repeats > 1 else x, aug_gen)
            outs = model(torch.cat([x, x_aug]))              # one pass for both views
            pairs = [(z[:n].repeat(repeats, 1) if repeats > 1 else z[:n], z[n:]) for z in outs]
            losses = torch.stack([loss_fn(z1, z2) for z1, z2 in pairs])
            optimizer.zero_grad(set_to_none=True)
            losses.mean().backward()
            optimizer.step()
            loss_sum += losses.detach()
            with torch.no_grad():
                P_sum += joint_distribution(*pairs[0])
            steps += 1

        per_head = loss_sum / steps
        check_finite(per_head, "IIC loss", step=epoch)
        record = dict(epoch=epoch, alpha=current["alpha"], loss=per_head.mean(), P=P_sum / steps,
                      seconds=time.perf_counter() - start)
        record.update({f"loss_{name}": per_head[h] for h, name in enumerate(names)})
        history.log(**record)
        postfix = {"loss": f"{history.last('loss'):.3f}"}
        last = epoch == num_epochs
        if y is not None and (last or (eval_every and epoch % eval_every == 0)):
            probs = predict(model, X, batch_size=max(batch_size, 1000), probabilities=True)
            labels = [pr.argmax(1) for pr in probs]
            y_true = y.detach().cpu().numpy()
            main = labels[0].cpu().numpy()
            history.log(eval_epoch=epoch, acc=metrics.cluster_acc(y_true, main),
                        nmi=metrics.nmi(y_true, main),
                        cluster_sizes=torch.bincount(labels[0], minlength=k),
                        confidence=probs[0].max(dim=1).values.mean())
            if len(labels) > 1:
                history.log(nmi_over=metrics.nmi(y_true, labels[1].cpu().numpy()))
            postfix["acc"] = f"{history.last('acc'):.3f}"
        bar.set_postfix(postfix)
    bar.close()
    return history


def entropy(p: torch.Tensor | Sequence) -> float:
    """Shannon entropy ``−Σ p log p`` of a distribution (any shape, summing to 1), in nats."""
    p = torch.as_tensor(p, dtype=torch.float64)
    if p.numel() == 0 or bool((p < 0).any()) or abs(float(p.sum()) - 1) > 1e-6:
        raise ValueError(f"entropy needs non-negative probabilities summing to 1, got {p.tolist()}")
    p = p[p > 0]
    return float(-(p * p.log()).sum()) + 0.0   # + 0.0: a certain outcome has 0, not -0.0


def mutual_information(P: torch.Tensor | Sequence) -> float:
    """``I = H(row marginal) + H(column marginal) − H(P)`` of a C × C joint distribution, in nats."""
    P = torch.as_tensor(P, dtype=torch.float64)
    if P.dim() != 2:
        raise ValueError(f"need a 2-D joint distribution, got shape {tuple(P.shape)}")
    # never negative; rounding can leave -1e-17 for independent variables, printed "-0.00"
    return max(0.0, entropy(P.sum(1)) + entropy(P.sum(0)) - entropy(P))
