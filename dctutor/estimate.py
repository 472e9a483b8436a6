"""How long a profile will take: step counts from the schedule × seconds per step measured here.

``python -m dctutor full-run`` prints this before it starts. For every training stage of every
chapter and benchmark method, the schedule gives the number of optimiser steps (epochs × steps
per epoch, or a step budget); :func:`measure` times a few steps of each kind of network *on the
device at hand*, at the schedule's batch size, and counts the floating-point operations of one
step with :class:`torch.utils.flop_counter.FlopCounterMode`. The product is an estimate, not a
measurement: it leaves out data loading, evaluation passes, k-means and t-SNE (minor on a GPU),
and DEC's step budget is an upper bound (it usually stops earlier).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from . import config

N_FULL = {"mnist": 70_000, "fashion-mnist": 70_000, "mnist-5k": 5_000, "fashion-mnist-5k": 5_000}


@dataclass
class StepCost:
    """One kind of training step: seconds per step measured here and FLOPs per step."""

    name: str
    batch_size: int
    seconds: float
    flops: float


def _time_steps(step, n_warmup: int = 2, n_timed: int = 5, device=None) -> float:
    for _ in range(n_warmup):
        step()
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(n_timed):
        step()
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t0) / n_timed


def _flops(step) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def _mlp_step(model, batch, lr=1e-3):
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step():
        loss = torch.nn.functional.mse_loss(model(batch), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def measure(profile: str, device: torch.device, quick: bool = False) -> dict[str, StepCost]:
    """Seconds and FLOPs per step of every kind of network the profile trains, on ``device``."""
    from . import augment, autoencoders as ae, dec, iic

    n_timed = 2 if quick else 5
    s1, s2 = config.schedule("pca_ae", profile), config.schedule("sdae", profile)
    s4, s5 = config.schedule("dec", profile), config.schedule("iic", profile)
    out: dict[str, StepCost] = {}

    def add(name, model, batch, step):
        model.to(device)
        out[name] = StepCost(name, len(batch), _time_steps(step, 1, n_timed, device), _flops(step))

    x = torch.rand(s1["batch_size"], 784, device=device)
    for code in s1["codes"]:
        m = ae.MLPAutoencoder((784, *s1["hidden"], code), hidden="elu", output="sigmoid").to(device)
        add(f"autoencoder {code}-D", m, x, _mlp_step(m, x))
    xl = torch.rand(s1["linear_batch_size"], 784, device=device)
    m = ae.MLPAutoencoder((784, s1["linear_code"]), hidden=None, output=None).to(device)
    add("linear autoencoder", m, xl, _mlp_step(m, xl))

    dims = s2["dims"]
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layer = ae.DenoisingLayer(a, b, s2["dropout"]).to(device)
        xb = torch.rand(s2["batch_size"], a, device=device)
        add(f"SDAE layer {i + 1}", layer, xb, _mlp_step(layer, xb))
    stack = ae.StackedDenoisingAutoencoder(dims, s2["dropout"]).to(device)
    xs = torch.rand(s2["batch_size"], 784, device=device)
    add("SDAE fine-tuning", stack, xs, _mlp_step(stack, xs))

    model = dec.DEC(stack.encoder, n_clusters=10).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=s4["lr"], momentum=s4["momentum"])
    xd = torch.rand(s4["batch_size"], 784, device=device)
    p = torch.full((s4["batch_size"], 10), 0.1, device=device)

    def dec_step():
        loss = dec.kl_loss(model(xd), p, check=False)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    add("DEC step", model, xd, dec_step)
    small = ae.StackedDenoisingAutoencoder(s4["collapse_dims"]).to(device)
    xc = torch.rand(s4["batch_size"], 784, device=device)
    add("small autoencoder", small, xc, _mlp_step(small, xc))

    for over in (s5["overcluster_k"], 0):
        net = iic.ClusterNet(s5["channels"], k=10, overcluster_k=over,
                             global_pool=s5["global_pool"]).to(device)
        opt_i = torch.optim.Adam(net.parameters(), lr=s5["lr"])
        xi = torch.rand(s5["batch_size"], 1, 28, 28, device=device)
        aug, gen = augment.named(s5["augmentation"]), torch.Generator(device).manual_seed(0)

        def iic_step(net=net, opt_i=opt_i, xi=xi, aug=aug, gen=gen):
            outs = net(torch.cat([xi, aug(xi, gen)]))
            loss = torch.stack([iic.iic_loss(z[:len(xi)], z[len(xi):]) for z in outs]).mean()
            opt_i.zero_grad(set_to_none=True)
            loss.backward()
            opt_i.step()
        add("IIC step" if over else "IIC step, main head only", net, xi, iic_step)
    return out


def _steps(n: int, batch: int, epochs: int) -> int:
    return epochs * math.ceil(n / batch)


def plan(profile: str) -> list[tuple[str, str, str, int]]:
    """(part, stage, step kind, number of steps) for every training stage of ``profile``.

    ``part`` is a chapter (``ch1`` …) or a benchmark method (``bench <method>``), counted once
    per seed and dataset by :func:`table`. Assumes chapter 4 finds chapter 2's stack in the
    cache (the chapters run in order on one machine) and every DEC run uses its whole budget.
    """
    from . import studies

    s1, s2 = config.schedule("pca_ae", profile), config.schedule("sdae", profile)
    s4, s5 = config.schedule("dec", profile), config.schedule("iic", profile)
    rows = []
    n1 = N_FULL[s1["dataset"]] * 6 // 7 if s1["dataset"] in ("mnist", "fashion-mnist") \
        else N_FULL[s1["dataset"]] * 4 // 5                    # chapter 1 trains on the train split
    rows.append(("ch1", "linear autoencoder", "linear autoencoder",
                 _steps(n1, s1["linear_batch_size"], s1["linear_num_epochs"])))
    for code in s1["codes"]:
        rows.append(("ch1", f"autoencoder, {code}-D code", f"autoencoder {code}-D",
                     _steps(n1, s1["batch_size"], s1["num_epochs"])))
    n2 = N_FULL[s2["dataset"]]
    layer = _steps(n2, s2["batch_size"], s2["layer_num_epochs"])
    fine = _steps(n2, s2["batch_size"], s2["finetune_num_epochs"])
    n_layers = len(s2["dims"]) - 1
    stack_rows = [(f"layer {i + 1}", f"SDAE layer {i + 1}", layer) for i in range(n_layers)]
    stack_rows.append(("fine-tuning", "SDAE fine-tuning", fine))
    rows += [("ch2", stage, kind, steps) for stage, kind, steps in stack_rows]
    rows.append(("ch2", "(b) from scratch", "SDAE fine-tuning", n_layers * layer + fine))
    rows.append(("ch4", "DEC (upper bound)", "DEC step", s4["seeds"] * s4["max_steps"]))
    nf = s4["fashion_subset"] or N_FULL[s4["fashion_dataset"]]
    f_layer = _steps(nf, s2["batch_size"], s4["fashion_layer_num_epochs"])
    f_fine = _steps(nf, s2["batch_size"], s4["fashion_finetune_num_epochs"])
    rows += [("ch4", f"Fashion stack, layer {i + 1}", f"SDAE layer {i + 1}", f_layer)
             for i in range(n_layers)]
    rows.append(("ch4", "Fashion stack, fine-tuning", "SDAE fine-tuning", f_fine))
    rows.append(("ch4", "DEC on Fashion (upper bound)", "DEC step", s4["max_steps"]))
    rows.append(("ch4", "collapse: small autoencoders", "small autoencoder",
                 _steps(nf, s4["batch_size"],
                        s4["collapse_pretrain_epochs"] + s4["fixed_pretrain_epochs"])))
    rows.append(("ch4", "collapse: 4 DEC runs (upper bound)", "DEC step",
                 4 * s4["collapse_max_steps"]))
    n5 = N_FULL[s5["dataset"]]
    rows.append(("ch5", "collapse demo (2 runs, main head only)", "IIC step, main head only",
                 2 * _steps(s5["collapse_subset"], s5["batch_size"], s5["collapse_num_epochs"])))
    rows.append(("ch5", "IIC", "IIC step", _steps(n5, s5["batch_size"], s5["num_epochs"])))
    n_abl = len(studies.iic_settings(s5))
    rows.append(("ch5", f"{n_abl} ablations", "IIC step",
                 n_abl * _steps(s5["ablation_subset"], s5["batch_size"], s5["ablation_num_epochs"])))
    # the benchmark, per seed and dataset
    from .bench import QUICK_MAX_SAMPLES, SMOKE_MAX_SAMPLES

    nb = N_FULL["mnist"] if profile != "quick" else QUICK_MAX_SAMPLES     # what bench.prepare uses
    if config.smoke_scale():
        nb = min(nb, SMOKE_MAX_SAMPLES)
    rows.append(("bench ae-kmeans", "autoencoder", "autoencoder 10-D",
                 _steps(nb, s1["batch_size"], s1["num_epochs"])))
    b_layer = _steps(nb, s2["batch_size"], s2["layer_num_epochs"])
    b_fine = _steps(nb, s2["batch_size"], s2["finetune_num_epochs"])
    rows += [("bench sdae-kmeans", f"layer {i + 1}", f"SDAE layer {i + 1}", b_layer)
             for i in range(n_layers)]
    rows.append(("bench sdae-kmeans", "fine-tuning", "SDAE fine-tuning", b_fine))
    rows.append(("bench dec", "DEC (upper bound; stack shared with sdae-kmeans)", "DEC step",
                 s4["max_steps"]))
    rows.append(("bench iic", "IIC", "IIC step", _steps(nb, s5["batch_size"], s5["num_epochs"])))
    return rows


def table(profile: str, costs: dict[str, StepCost], seeds: int = 5,
          datasets: int = 2) -> tuple[list[dict], dict[str, float]]:
    """Rows with steps, samples, PFLOP and estimated seconds; totals per part.

    Benchmark parts are multiplied by ``seeds`` × ``datasets``.
    """
    rows, totals = [], {}
    for part, stage, kind, steps in plan(profile):
        reps = seeds * datasets if part.startswith("bench") else 1
        cost = costs[kind]
        seconds = reps * steps * cost.seconds
        rows.append({"part": part, "stage": stage, "runs": reps, "steps": steps,
                     "samples": reps * steps * cost.batch_size,
                     "PFLOP": reps * steps * cost.flops / 1e15, "seconds": seconds})
        totals[part] = totals.get(part, 0.0) + seconds
    return rows, totals


# Assumptions for a projection onto a GPU from a machine without one: sustained TFLOP/s and a
# fixed cost per optimiser step (kernel launches, Python), a pessimistic and an optimistic pair.
GPU_ASSUMPTIONS = ((20e12, 4e-4), (60e12, 2e-4))


def project(costs: dict[str, StepCost], tflops: float, overhead_s: float) -> dict[str, StepCost]:
    """Step costs on an assumed GPU: ``flops / tflops + overhead_s`` seconds per step.

    A projection from the counted FLOPs, not a measurement: it ignores memory bandwidth and
    assumes every step reaches the stated throughput."""
    return {k: StepCost(k, c.batch_size, c.flops / tflops + overhead_s, c.flops)
            for k, c in costs.items()}


def projection_lines(profile: str, costs: dict[str, StepCost], seeds: int = 5,
                     datasets: int = 2) -> list[str]:
    """Per-part minutes on the assumed GPUs of :data:`GPU_ASSUMPTIONS` (a range, labelled)."""
    ranges: dict[str, list[float]] = {}
    for tflops, overhead in GPU_ASSUMPTIONS:
        _, totals = table(profile, project(costs, tflops, overhead), seeds, datasets)
        for part, sec in totals.items():
            ranges.setdefault(part, []).append(sec / 60)
        ranges.setdefault("total", []).append(sum(totals.values()) / 60)
    head = ", ".join(f"{t / 1e12:.0f} TFLOP/s and {1e3 * o:.1f} ms/step"
                     for t, o in GPU_ASSUMPTIONS)
    lines = [f"Projection onto a GPU (an estimate from the FLOPs above, assuming {head}; "
             "training steps only):"]
    for part, (a, b) in ranges.items():
        lines.append(f"  {part:24s} {min(a, b):6.1f} – {max(a, b):.1f} min")
    return lines


def render(rows: list[dict], totals: dict[str, float], costs: dict[str, StepCost],
           device_name: str, budget_s: float | None = None) -> str:
    """The estimate as text: step costs measured, stages, totals per part, grand total."""
    lines = [f"Seconds per training step measured on {device_name} (a few steps each):",
             f"  {'step':28s} {'batch':>6s} {'ms/step':>9s} {'GFLOP/step':>11s} {'TFLOP/s':>8s}"]
    for c in costs.values():
        lines.append(f"  {c.name:28s} {c.batch_size:6d} {1e3 * c.seconds:9.1f} {c.flops / 1e9:11.2f} "
                     f"{c.flops / max(c.seconds, 1e-12) / 1e12:8.2f}")
    lines += ["", "Estimate (steps from the schedule × seconds per step; an estimate, not a "
              "measurement; evaluation, k-means and t-SNE not counted):",
              f"  {'part':18s} {'stage':44s} {'runs':>4s} {'steps':>8s} {'PFLOP':>7s} {'minutes':>8s}"]
    for r in rows:
        lines.append(f"  {r['part']:18s} {r['stage'][:44]:44s} {r['runs']:4d} {r['steps']:8,d} "
                     f"{r['PFLOP']:7.3f} {r['seconds'] / 60:8.1f}")
    lines.append("")
    for part, sec in totals.items():
        lines.append(f"  total {part:18s} {sec / 60:8.1f} min")
    grand = sum(totals.values())
    lines.append(f"  {'total':24s} {grand / 60:8.1f} min")
    if budget_s is not None:
        verdict = "fits" if grand <= budget_s else "does NOT fit"
        lines.append(f"  budget {budget_s / 60:.0f} min: the estimate {verdict}")
        if grand > budget_s:
            worst = sorted(totals.items(), key=lambda kv: -kv[1])[:3]
            lines.append("  largest parts: " + ", ".join(f"{p} {s / 60:.1f} min" for p, s in worst))
    return "\n".join(lines)
