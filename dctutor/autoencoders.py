"""Autoencoders: MLP autoencoders (chapter 1) and stacked denoising autoencoders (chapter 2).

* :class:`MLPAutoencoder` — an encoder/decoder pair built from a list of layer sizes, with a
  choice of hidden activation (``"elu"``, ``"relu"`` or ``None`` for the linear case) and output
  activation (``"sigmoid"`` or ``None``). Chapter 1 compares it with PCA.
* :func:`train_autoencoder` — the one trainer for every autoencoder in the book: data on the
  device, minibatches by index, Adam or momentum SGD, a history of train / held-out loss.
* :class:`DenoisingLayer`, :class:`StackedDenoisingAutoencoder`, :func:`pretrain_layerwise`,
  :func:`finetune` — greedy layer-wise pretraining and end-to-end fine-tuning (chapter 2).
* :func:`pretrained_stack` — load a trained stack from the cache, or train and save it, so
  chapter 4 (DEC) starts from chapter 2's weights (and chapter 2's second page can score the
  stack after layer-wise pretraining alone: ``stage="pretrained-only"``).

Losses are mean squared errors **per input unit** (per pixel, inputs in [0, 1]).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .training import History, batches, check_finite

_ACTIVATIONS: dict[str | None, Callable[[], nn.Module]] = {
    "elu": nn.ELU,
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "linear": nn.Identity,
    "none": nn.Identity,
    None: nn.Identity,
}


def activation(name: str | None) -> nn.Module:
    """The activation module called ``name`` (``None``/``"linear"`` is the identity)."""
    key = name.lower() if isinstance(name, str) else name
    if key not in _ACTIVATIONS:
        choices = ", ".join(repr(k) for k in _ACTIVATIONS if k is not None)
        raise ValueError(f"unknown activation {name!r}; choose one of {choices} or None")
    return _ACTIVATIONS[key]()


def _check_inputs(X: torch.Tensor, n_features: int, what: str = "X") -> None:
    if not isinstance(X, torch.Tensor) or X.dim() != 2:
        shape = tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__
        raise ValueError(f"{what} must be a 2-D tensor N × {n_features}, got {shape}")
    if X.shape[1] != n_features:
        raise ValueError(f"{what} has {X.shape[1]} features but the model expects {n_features}")
    if X.shape[0] == 0:
        raise ValueError(f"{what} is empty")


# ---------------------------------------------------------------------------------------------
# Chapter 1: MLP autoencoders


def _mlp(sizes: Sequence[int], hidden: str | None, last: str | None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        is_last = i == len(sizes) - 2
        layers.append(activation(last if is_last else hidden))
    return nn.Sequential(*[m for m in layers if not isinstance(m, nn.Identity)])


class MLPAutoencoder(nn.Module):
    """An MLP autoencoder ``sizes[0] → … → sizes[-1] → … → sizes[0]`` (chapter 1).

    Args:
        sizes: encoder layer sizes, input first and code last, e.g. ``(784, 512, 128, 2)``;
            the decoder mirrors them.
        hidden: activation after every hidden layer (``"elu"``, ``"relu"``, or ``None`` for a
            linear autoencoder).
        output: activation of the reconstruction (``"sigmoid"`` for inputs in [0, 1], or
            ``None``).
        code: activation of the code layer (default ``None``: a linear bottleneck).

    Shapes: ``encode`` N × sizes[0] → N × sizes[-1]; ``decode`` the reverse; ``forward`` is
    ``decode(encode(x))``.
    """

    def __init__(self, sizes: Sequence[int] = (784, 512, 128, 2), hidden: str | None = "elu",
                 output: str | None = "sigmoid", code: str | None = None):
        super().__init__()
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes must list at least two positive layer sizes, got {sizes}")
        self.sizes = sizes
        self.activations = dict(hidden=hidden, output=output, code=code)
        self.encoder = _mlp(sizes, hidden, code)
        self.decoder = _mlp(sizes[::-1], hidden, output)

    @property
    def code_size(self) -> int:
        return self.sizes[-1]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def init_output_bias(self, X: torch.Tensor, eps: float = 1e-3) -> "MLPAutoencoder":
        """Start the decoder at the mean of ``X``: its last bias becomes the mean input.

        Through a sigmoid output the bias is ``logit(mean)`` (the mean clipped to
        ``[eps, 1 - eps]``). The network then begins where PCA with zero components is, instead
        of at a grey image, and spends its first steps on the digits rather than on the
        background. Returns ``self``.
        """
        _check_inputs(X, self.sizes[0])
        last = [m for m in self.decoder if isinstance(m, nn.Linear)][-1]
        mean = X.mean(dim=0).to(device=last.bias.device, dtype=last.bias.dtype)
        out = self.activations["output"]
        out = out.lower() if isinstance(out, str) else out
        if out == "sigmoid":
            mean = torch.logit(mean.clamp(eps, 1 - eps))
        elif out not in (None, "linear", "none"):
            raise ValueError(f"init_output_bias knows sigmoid and linear outputs, not {out!r}")
        last.bias.copy_(mean)
        return self


@torch.no_grad()
def reconstruction_error(model: nn.Module, X: torch.Tensor, batch_size: int = 4096) -> float:
    """Mean squared error per input unit of ``model(X)`` against ``X``, in eval mode."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), device=X.device)
    for idx in batches(len(X), batch_size, device=X.device, shuffle=False):
        xb = X[idx]
        total += ((model(xb) - xb) ** 2).sum()
    model.train(was_training)
    return float(total / X.numel())


@torch.no_grad()
def encode(model: nn.Module, X: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """``model.encode`` over ``X`` in eval mode, in batches; returns N × code_size."""
    was_training = model.training
    model.eval()
    parts = [model.encode(X[i:i + batch_size]) for i in range(0, len(X), batch_size)]
    model.train(was_training)
    return torch.cat(parts)


def _optimizer(params, name: str, lr: float, momentum: float, weight_decay: float):
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose 'adam' or 'sgd'")


def train_autoencoder(model: nn.Module, X: torch.Tensor, X_val: torch.Tensor | None = None, *,
                      num_epochs: int = 10, batch_size: int = 128, lr: float = 1e-3,
                      optimizer: str = "adam", momentum: float = 0.9, weight_decay: float = 0.0,
                      lr_step_epochs: int | None = None, lr_gamma: float = 0.1,
                      lr_schedule: str | None = None,
                      seed: int = 0, desc: str = "autoencoder", progress: bool = True) -> History:
    """Train ``model`` to reconstruct ``X`` (MSE per input unit); returns a :class:`History`.

    ``X`` (N × D) and ``X_val`` stay on their device; minibatches are index slices. Whatever
    the model does in training mode (dropout corruption in a :class:`DenoisingLayer`) happens in
    ``model(xb)``; the target is always the clean ``xb``.

    Args:
        num_epochs, batch_size, lr: the schedule (from ``config.schedule``).
        optimizer: ``"adam"`` or ``"sgd"`` (with ``momentum``).
        lr_step_epochs: divide the learning rate by ``1 / lr_gamma`` every so many epochs.
        lr_schedule: ``None`` (constant, or stepped by ``lr_step_epochs``) or ``"cosine"``: the
            learning rate falls from ``lr`` to 0 along half a cosine, step by step, over the
            whole run (chapter 1 uses it to let Adam settle on the optimum).
        seed: seeds the minibatch order.

    History keys: ``epoch``, ``train_loss`` (mean over the epoch's batches), ``val_loss``
    (held-out, eval mode; only with ``X_val``), ``lr``, ``seconds`` (cumulative).

    Raises:
        ValueError: inputs of the wrong shape or a bad schedule.
        dctutor.training.TrainingDiverged: the loss became NaN or infinite.
    """
    n_features = next(p for p in model.parameters() if p.dim() == 2).shape[1]
    _check_inputs(X, n_features)
    if X_val is not None:
        _check_inputs(X_val, n_features, "X_val")
    if num_epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"need num_epochs ≥ 1, batch_size ≥ 1, lr > 0; got "
                         f"{num_epochs}, {batch_size}, {lr}")
    if lr_schedule not in (None, "cosine"):
        raise ValueError(f"unknown lr_schedule {lr_schedule!r}; use None or 'cosine'")
    if lr_schedule == "cosine" and lr_step_epochs:
        raise ValueError("give either lr_step_epochs or lr_schedule='cosine', not both")
    opt = _optimizer(model.parameters(), optimizer, lr, momentum, weight_decay)
    sched = (torch.optim.lr_scheduler.StepLR(opt, lr_step_epochs, lr_gamma)
             if lr_step_epochs else None)
    step_sched = None
    if lr_schedule == "cosine":
        total_steps = num_epochs * math.ceil(len(X) / batch_size)
        step_sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda t: 0.5 * (1.0 + math.cos(math.pi * min(t, total_steps) / total_steps)))
    gen = torch.Generator().manual_seed(seed)
    history = History()
    start = time.perf_counter()
    bar = tqdm(range(1, num_epochs + 1), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        total = torch.zeros((), device=X.device)
        n_batches = 0
        for idx in batches(len(X), batch_size, device=X.device, generator=gen):
            xb = X[idx]
            loss = nn.functional.mse_loss(model(xb), xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step_sched is not None:
                step_sched.step()
            total += loss.detach()
            n_batches += 1
        train_loss = total / n_batches
        check_finite(train_loss, f"{desc} training loss", step=epoch)
        record = dict(epoch=epoch, train_loss=float(train_loss), lr=opt.param_groups[0]["lr"])
        if X_val is not None:
            record["val_loss"] = reconstruction_error(model, X_val)
        record["seconds"] = time.perf_counter() - start
        history.log(**record)
        bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k.endswith("loss")})
        if sched is not None:
            sched.step()
    model.eval()
    return history


# ---------------------------------------------------------------------------------------------
# Chapter 2: stacked denoising autoencoders


class DenoisingLayer(nn.Module):
    """One denoising autoencoder layer of a stack (chapter 2).

    ``forward(x) = decode(encode(dropout(x)))`` in training mode: the input is corrupted by
    dropout with probability ``dropout`` and the clean input is the target. ReLU follows the
    encoder unless this is the innermost layer (the code stays linear) and follows the decoder
    unless this is the outermost layer (the reconstruction of the data stays linear).

    Shapes: ``encode`` N × n_in → N × n_out, ``decode`` N × n_out → N × n_in.
    """

    def __init__(self, n_in: int, n_out: int, dropout: float = 0.2, *,
                 innermost: bool = False, outermost: bool = False):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.corrupt = nn.Dropout(dropout)
        self.enc = nn.Linear(n_in, n_out)
        self.dec = nn.Linear(n_out, n_in)
        self.enc_act = nn.Identity() if innermost else nn.ReLU()
        self.dec_act = nn.Identity() if outermost else nn.ReLU()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc_act(self.enc(x))

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        return self.dec_act(self.dec(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(self.corrupt(x)))


class Encoder(nn.Module):
    """The encoding half of a stack as a module of its own (shares the stack's parameters)."""

    def __init__(self, layers: nn.ModuleList):
        super().__init__()
        self.layers = layers

    @property
    def out_features(self) -> int:
        return self.layers[-1].enc.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer.encode(x)
        return x


class StackedDenoisingAutoencoder(nn.Module):
    """A stack of :class:`DenoisingLayer` s, e.g. 784-500-500-2000-10 (chapter 2).

    ``encode``/``decode``/``forward`` run the whole stack *without* corruption (fine-tuning and
    use); ``layers[i]`` is the i-th denoising autoencoder for layer-wise pretraining;
    ``encoder`` is the encoding half as a module, which DEC (chapter 4) trains further.
    """

    def __init__(self, dims: Sequence[int] = (784, 500, 500, 2000, 10), dropout: float = 0.2):
        super().__init__()
        dims = tuple(int(d) for d in dims)
        if len(dims) < 2 or min(dims) < 1:
            raise ValueError(f"dims must list at least two positive sizes, got {dims}")
        self.dims, self.dropout = dims, float(dropout)
        n = len(dims) - 1
        self.layers = nn.ModuleList(
            DenoisingLayer(dims[i], dims[i + 1], dropout, innermost=i == n - 1, outermost=i == 0)
            for i in range(n)
        )
        self.encoder = Encoder(self.layers)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self.layers):
            z = layer.decode(z)
        return z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def pretrain_layerwise(model: StackedDenoisingAutoencoder, X: torch.Tensor, *,
                       num_epochs: int, batch_size: int = 256, lr: float = 0.1,
                       optimizer: str = "sgd", momentum: float = 0.9,
                       lr_step_epochs: int | None = None, seed: int = 0,
                       progress: bool = True) -> list[History]:
    """Greedy layer-wise pretraining: each layer learns to denoise the codes of those below.

    Layer ``i`` is trained as its own denoising autoencoder on ``encode_{<i}(X)`` (computed once,
    without corruption, and kept on the device). Returns one :class:`History` per layer.
    """
    _check_inputs(X, model.dims[0])
    histories = []
    H = X
    for i, layer in enumerate(model.layers):
        h = train_autoencoder(layer, H, num_epochs=num_epochs, batch_size=batch_size, lr=lr,
                              optimizer=optimizer, momentum=momentum,
                              lr_step_epochs=lr_step_epochs, seed=seed + i,
                              desc=f"layer {i + 1}/{len(model.layers)} "
                                   f"({model.dims[i]}→{model.dims[i + 1]})",
                              progress=progress)
        histories.append(h)
        with torch.no_grad():
            layer.eval()
            H = torch.cat([layer.encode(H[j:j + 8192]) for j in range(0, len(H), 8192)])
    return histories


def finetune(model: StackedDenoisingAutoencoder, X: torch.Tensor,
             X_val: torch.Tensor | None = None, **kwargs) -> History:
    """Train the whole stack end to end, without corruption (the stack's ``forward`` has none).

    Takes the keyword arguments of :func:`train_autoencoder`.
    """
    kwargs.setdefault("desc", "fine-tuning")
    return train_autoencoder(model, X, X_val, **kwargs)


# ---------------------------------------------------------------------------------------------
# Saving and reusing a trained stack (chapter 2 → chapter 4)

# The entries of the "sdae" schedule that :func:`train_stack` reads. Only these name the cached
# weights: evaluation settings in the same section (the t-SNE size) can change without
# retraining. Optional entries take the defaults below.
_STACK_REQUIRED = ("dims", "batch_size", "lr", "layer_num_epochs", "finetune_num_epochs")
_STACK_DEFAULTS = dict(dropout=0.2, optimizer="sgd", momentum=0.9, finetune_lr=None,
                       layer_lr_step_epochs=None, finetune_lr_step_epochs=None)


def stack_schedule(schedule: dict) -> dict:
    """The training part of an ``"sdae"`` schedule, defaults filled in (what the cache is keyed by).

    Raises :class:`ValueError` when a required entry (``dims``, ``batch_size``, ``lr``,
    ``layer_num_epochs``, ``finetune_num_epochs``) is missing.
    """
    if not isinstance(schedule, dict):
        raise ValueError(f"schedule must be a dict (config.schedule('sdae')), got {type(schedule).__name__}")
    missing = [k for k in _STACK_REQUIRED if k not in schedule]
    if missing:
        raise ValueError(f"the stack's schedule lacks {', '.join(missing)}; "
                         "pass config.schedule('sdae') or a dict with the same entries")
    chosen = {k: schedule.get(k, default) for k, default in _STACK_DEFAULTS.items()}
    chosen.update({k: schedule[k] for k in _STACK_REQUIRED})
    chosen["dims"] = tuple(int(d) for d in chosen["dims"])
    if chosen["finetune_lr"] is None:
        chosen["finetune_lr"] = chosen["lr"]
    return chosen


# The stages of training a stack that a saved file can hold (:func:`load_stack`'s ``stage``):
# the weights after fine-tuning (always), and after layer-wise pretraining alone (when given).
STAGES = ("fine-tuned", "pretrained-only")
_STAGE_KEYS = {"fine-tuned": "state_dict", "pretrained-only": "pretrained_state_dict"}


def _check_stage(stage: str) -> str:
    if stage not in _STAGE_KEYS:
        raise ValueError(f"unknown stage {stage!r}; choose one of {', '.join(map(repr, STAGES))}")
    return _STAGE_KEYS[stage]


def save_stack(model: StackedDenoisingAutoencoder, path: str | Path, *,
               pretrained_only: dict[str, torch.Tensor] | None = None, **meta) -> Path:
    """Save the stack's weights with the dims and dropout it was built with, and ``meta``.

    ``pretrained_only`` (a state dict, :func:`train_stack`'s ``info["pretrained"]``) saves the
    weights after layer-wise pretraining beside them, for ``load_stack(..., "pretrained-only")``.
    ``meta`` holds plain values (numbers, strings, lists, dicts). The file is written under a
    temporary name and renamed, so a reader never sees half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    blob = {"dims": model.dims, "dropout": model.dropout,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "meta": meta}
    if pretrained_only is not None:
        blob["pretrained_state_dict"] = {k: v.detach().cpu() for k, v in pretrained_only.items()}
    torch.save(blob, tmp)
    os.replace(tmp, path)
    return path


def _read_stack(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved stack at {path}")
    return torch.load(path, map_location="cpu", weights_only=True)


def _build_stack(blob: dict, stage: str, device) -> StackedDenoisingAutoencoder:
    model = StackedDenoisingAutoencoder(blob["dims"], blob["dropout"])
    model.load_state_dict(blob[_STAGE_KEYS[stage]])
    return model.to(device).eval()


def load_stack(path: str | Path, device: torch.device | str = "cpu",
               stage: str = "fine-tuned") -> StackedDenoisingAutoencoder:
    """Rebuild a stack saved by :func:`save_stack` on ``device`` (eval mode).

    ``stage="pretrained-only"`` gives the weights after layer-wise pretraining, before
    fine-tuning; :class:`KeyError` when the file does not hold them (saved without them).
    """
    key = _check_stage(stage)
    blob = _read_stack(path)
    if key not in blob:
        raise KeyError(f"the stack saved at {path} holds no {stage} weights")
    return _build_stack(blob, stage, device)


def stack_info(path: str | Path) -> dict:
    """The metadata saved with a stack: dataset, profile, seed, number of samples, the training
    schedule and the loss histories (``{"layers": [...], "finetune": {...}}``)."""
    return dict(_read_stack(path).get("meta", {}))


def stack_path(dataset: str, profile: str, seed: int, schedule: dict) -> Path:
    """Where the stack for ``(dataset, profile, seed)`` trained with ``schedule`` is cached.

    The folder is ``<cache_dir()>/models`` (``$DCTUTOR_CACHE`` or ``~/.cache/dctutor``). A hash
    of the training entries of the schedule (:func:`stack_schedule`) and the package version are
    part of the name, so changing either trains a new stack rather than reusing a stale one.
    """
    from . import __version__
    from .data import cache_dir

    key = json.dumps(stack_schedule(schedule), sort_keys=True, default=str)
    digest = hashlib.sha1(key.encode()).hexdigest()
    return cache_dir() / "models" / f"sdae-{dataset}-{profile}-seed{seed}-v{__version__}-{digest[:10]}.pt"


def train_stack(X: torch.Tensor, schedule: dict, seed: int = 0, X_val: torch.Tensor | None = None,
                progress: bool = True) -> tuple[StackedDenoisingAutoencoder, dict[str, object]]:
    """Build a stack from ``schedule`` (the ``"sdae"`` section), pretrain it layer-wise, fine-tune.

    Reads ``dims``, ``dropout``, ``batch_size``, ``lr``, ``momentum``, ``optimizer``,
    ``layer_num_epochs``, ``finetune_num_epochs`` and, if present, ``finetune_lr``,
    ``layer_lr_step_epochs``, ``finetune_lr_step_epochs`` (see :func:`stack_schedule`).

    Returns the model (eval mode, on ``X``'s device) and ``{"layers": [History, ...],
    "finetune": History, "pretrained": state_dict}``, the last a copy of the weights after
    layer-wise pretraining and before fine-tuning.
    """
    s = stack_schedule(schedule)
    _check_inputs(X, s["dims"][0])
    torch.manual_seed(seed)
    model = StackedDenoisingAutoencoder(s["dims"], s["dropout"]).to(X.device)
    common = dict(batch_size=s["batch_size"], optimizer=s["optimizer"], momentum=s["momentum"],
                  seed=seed, progress=progress)
    layers = pretrain_layerwise(model, X, num_epochs=s["layer_num_epochs"], lr=s["lr"],
                                lr_step_epochs=s["layer_lr_step_epochs"], **common)
    pretrained = {k: v.detach().clone() for k, v in model.state_dict().items()}
    tuned = finetune(model, X, X_val, num_epochs=s["finetune_num_epochs"], lr=s["finetune_lr"],
                     lr_step_epochs=s["finetune_lr_step_epochs"], **common)
    return model.eval(), {"layers": layers, "finetune": tuned, "pretrained": pretrained}


def _fingerprint(X: torch.Tensor) -> dict:
    return {"n_samples": int(X.shape[0]), "data_sum": float(X.double().sum())}


def cache_stack(model: StackedDenoisingAutoencoder, X: torch.Tensor, dataset: str, profile: str,
                seed: int, schedule: dict, info: dict | None = None) -> Path:
    """Save a stack trained on ``X`` where :func:`pretrained_stack` looks for it; returns the path.

    ``info`` (the second value :func:`train_stack` returns) adds the loss histories to the file,
    and the weights after layer-wise pretraining alone (``info["pretrained"]``), which
    ``pretrained_stack(..., stage="pretrained-only")`` returns.
    """
    meta = dict(dataset=dataset, profile=profile, seed=int(seed),
                schedule=json.loads(json.dumps(stack_schedule(schedule), default=str)),
                **_fingerprint(X))
    if info is not None:
        meta["histories"] = {"layers": [dict(h) for h in info.get("layers", [])],
                             "finetune": dict(info.get("finetune", {}))}
    return save_stack(model, stack_path(dataset, profile, seed, schedule),
                      pretrained_only=None if info is None else info.get("pretrained"), **meta)


def pretrained_stack(dataset: str, profile: str, seed: int, schedule: dict,
                     X: torch.Tensor | None = None, device: torch.device | str | None = None,
                     train: bool = True, progress: bool = True,
                     stage: str = "fine-tuned") -> StackedDenoisingAutoencoder:
    """The stack chapter 2 trains for ``(dataset, profile, seed)``: from the cache, or trained now.

    ``stage`` picks the weights: ``"fine-tuned"`` (the default, what DEC starts from) or
    ``"pretrained-only"`` (after layer-wise pretraining, before fine-tuning).

    When no cached weights exist — or the cached file lacks the ``stage`` asked for (a file
    saved without ``info``) — and ``train`` is true, trains on ``X`` (the dataset's inputs, all
    of them, N × 784 on the device) with :func:`train_stack`, which yields both stages, and saves
    the result with :func:`cache_stack`, replacing the file. When cached weights exist and ``X``
    is given, ``X`` must be the data they were trained on (same number of samples and pixel
    sum), else :class:`ValueError`.
    """
    key = _check_stage(stage)
    path = stack_path(dataset, profile, seed, schedule)
    dev = device if device is not None else (X.device if X is not None else "cpu")
    lacks = None
    if path.is_file():
        blob = _read_stack(path)
        if X is not None:
            meta, seen = dict(blob.get("meta", {})), _fingerprint(X)
            if "n_samples" in meta and (
                    meta["n_samples"] != seen["n_samples"]
                    or abs(meta["data_sum"] - seen["data_sum"]) > 1e-6 * max(1.0, abs(seen["data_sum"]))):
                raise ValueError(
                    f"the cached stack at {path} was trained on {meta['n_samples']} samples of "
                    f"{dataset!r}, but X holds {seen['n_samples']} samples that differ; pass the "
                    "same inputs (data.load(name, 'all').inputs()) or delete the file to retrain")
        if key in blob:
            return _build_stack(blob, stage, dev)
        lacks = f"the cached stack at {path} holds no {stage} weights (saved without them)"
    if not train:
        raise FileNotFoundError(
            (lacks or f"no cached stack for {dataset}/{profile}/seed {seed} at {path}")
            + "; run chapter 2 or call with train=True")
    if X is None:
        raise ValueError(f"{lacks or 'no cached stack'}: pass X (the training inputs) to train one")
    model, info = train_stack(X, schedule, seed=seed, progress=progress)
    cache_stack(model, X, dataset, profile, seed, schedule, info)
    if stage == "pretrained-only":
        model.load_state_dict(info["pretrained"])
    return model.to(dev).eval()
