"""Network throughput: inference patches/s and training samples/s of a CENN model, per precision mode.

    python benchmarks/bench_network.py [--device cpu|cuda] [--model cenn-paper] [--npix 256]
        [--batch N] [--steps N] [--warmup N] [--modes fp32,channels_last,bf16,...]
        [--simulator] [--simulator-mode fp32] [--no-record]

Modes: fp32, channels_last, bf16, bf16_channels_last, compiled, compiled_bf16 (bf16: autocast
around forward and loss; channels_last: NHWC model and inputs; compiled: torch.compile). A training
step is forward + MSE loss + backward + Adagrad (lr 0.05). Beside each rate, the GFLOP/s it
implies (the FLOP floor: 1.68 GFLOP per 256×256 patch forward, 5.0 forward+backward, for
cenn-paper). ``--simulator`` also times the streaming loop: simulate a batch on the same device,
min-max normalise it, one training step. Defaults: CPU --batch 32 --steps 5 --warmup 2;
CUDA --batch 256 --steps 50 --warmup 10.

Appends one entry per mode (and one for the streaming loop) to benchmarks/results.jsonl with the
machine's description, unless --no-record.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).parent))
from common import record

from cenn.data.normalization import build_normalization
from cenn.model import build_model
from cenn.sky.simulator import GeometryConfig, PatchSimulator, SimulationConfig

IN_CHANNELS = 3
LEARNING_RATE = 0.05
SEED = 0
#: cenn-paper's cost per 256×256 patch (design notes): forward, and forward + backward.
PAPER_GFLOP = {"inference": 1.68, "training": 5.0}
DEFAULTS = {"cpu": {"batch": 32, "steps": 5, "warmup": 2},
            "cuda": {"batch": 256, "steps": 50, "warmup": 10}}


@dataclass(frozen=True)
class Mode:
    channels_last: bool = False
    bf16: bool = False
    compiled: bool = False


MODES = {
    "fp32": Mode(),
    "channels_last": Mode(channels_last=True),
    "bf16": Mode(bf16=True),
    "bf16_channels_last": Mode(bf16=True, channels_last=True),
    "compiled": Mode(compiled=True),
    "compiled_bf16": Mode(compiled=True, bf16=True),
}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def rate(step: Callable[[], object], items: int, steps: int, warmup: int, device: str) -> float:
    """Items per second over ``steps`` calls of ``step``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return items * steps / (time.perf_counter() - start)


def gflop_per_patch(model: str, npix: int) -> dict[str, float]:
    """GFLOP per patch, forward (``inference``) and forward + backward (``training``): the design
    notes' figures for cenn-paper scaled by (npix/256)², counted by torch's FLOP counter otherwise."""
    if model == "cenn-paper":
        return {k: v * (npix / 256) ** 2 for k, v in PAPER_GFLOP.items()}
    net = build_model(model, IN_CHANNELS)
    x = torch.rand(1, IN_CHANNELS, npix, npix)
    with FlopCounterMode(display=False) as forward:
        out = net(x)
    with FlopCounterMode(display=False) as backward:
        out.square().mean().backward()
    return {"inference": forward.get_total_flops() / 1e9,
            "training": (forward.get_total_flops() + backward.get_total_flops()) / 1e9}


def _autocast(device: str, mode: Mode) -> contextlib.AbstractContextManager:
    if not mode.bf16:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def _prepare(
    model: str, in_channels: int, device: str, mode: Mode, train: bool
) -> tuple[nn.Module, nn.Module]:
    """The registry-default network (seeded) in ``mode``: the module whose parameters train, and
    the callable to run (the same module, or its compiled wrapper)."""
    torch.manual_seed(SEED)
    net = build_model(model, in_channels).to(device).train(train)
    if mode.channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net, torch.compile(net) if mode.compiled else net


def _inputs(batch: int, channels: int, npix: int, device: str, mode: Mode) -> torch.Tensor:
    g = torch.Generator(device=device).manual_seed(SEED)
    x = torch.rand(batch, channels, npix, npix, generator=g, device=device)
    return x.contiguous(memory_format=torch.channels_last) if mode.channels_last else x


def _train_step(net: nn.Module, forward: nn.Module, device: str, mode: Mode) -> Callable:
    """One training step on ``(x, y)``: forward + MSE loss (autocast in bf16 modes), backward, Adagrad."""
    optimizer = torch.optim.Adagrad(net.parameters(), lr=LEARNING_RATE)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, mode):
            loss = F.mse_loss(forward(x).float(), y)
        loss.backward()
        optimizer.step()

    return step


def inference_rate(args: argparse.Namespace, mode: Mode) -> float:
    """Forward passes per second under ``torch.inference_mode``, in patches/s."""
    _, forward = _prepare(args.model, IN_CHANNELS, args.device, mode, train=False)
    x = _inputs(args.batch, IN_CHANNELS, args.npix, args.device, mode)

    def step() -> None:
        with torch.inference_mode(), _autocast(args.device, mode):
            forward(x)

    return rate(step, args.batch, args.steps, args.warmup, args.device)


def training_rate(args: argparse.Namespace, mode: Mode) -> float:
    """Training steps per second on one fixed random batch, in samples/s."""
    net, forward = _prepare(args.model, IN_CHANNELS, args.device, mode, train=True)
    x = _inputs(args.batch, IN_CHANNELS, args.npix, args.device, mode)
    y = _inputs(args.batch, 1, args.npix, args.device, Mode())
    step = _train_step(net, forward, args.device, mode)
    return rate(lambda: step(x, y), args.batch, args.steps, args.warmup, args.device)


def streaming_rates(args: argparse.Namespace, mode: Mode) -> dict[str, float]:
    """The simulator alone, and the streaming loop (simulate a fresh batch on the device, min-max
    normalise it, one training step), in samples/s."""
    config = SimulationConfig(seed=SEED, geometry=GeometryConfig(npix=args.npix))
    sim = PatchSimulator(config, args.device)
    in_channels = len(sim.instrument.bands)
    norm = build_normalization("minmax")
    net, forward = _prepare(args.model, in_channels, args.device, mode, train=True)
    step = _train_step(net, forward, args.device, mode)
    start = 0

    def next_batch():
        nonlocal start
        batch = sim.simulate(range(start, start + args.batch))
        start += args.batch
        return batch

    def loop_step() -> None:
        batch = next_batch()
        stats = norm.fit(batch.inputs)
        x = norm.normalize_inputs(batch.inputs, stats)
        if mode.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        step(x, norm.normalize_target(batch.target, stats))

    return {"simulator_patches_per_s": rate(next_batch, args.batch, args.steps, args.warmup, args.device),
            "loop_samples_per_s": rate(loop_step, args.batch, args.steps, args.warmup, args.device)}


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"


def measure_mode(args: argparse.Namespace, name: str, gflop: dict[str, float]) -> dict:
    """Both rates of one mode with the GFLOP/s they imply; a failure becomes an ``error`` field."""
    mode = MODES[name]
    figures: dict = {"mode": name}
    for kind, measure, unit in (("inference", inference_rate, "patches_per_s"),
                                ("training", training_rate, "samples_per_s")):
        try:
            value = measure(args, mode)
        except Exception as err:  # e.g. no C compiler for torch.compile: report it, go on
            figures.setdefault("error", f"{kind}: {_first_line(err)}")
            if mode.compiled:
                torch._dynamo.reset()
            continue
        figures[f"{kind}_{unit}"] = round(value, 2)
        figures[f"{kind}_gflop_per_s"] = round(value * gflop[kind], 1)
    return figures


def _cell(figures: dict, key: str) -> str:
    return f"{figures[key]:g}" if key in figures else "failed"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--model", default="cenn-paper")
    p.add_argument("--npix", type=int, default=256)
    p.add_argument("--batch", type=int, help="default: 32 on the CPU, 256 on CUDA")
    p.add_argument("--steps", type=int, help="timed steps; default: 5 on the CPU, 50 on CUDA")
    p.add_argument("--warmup", type=int, help="untimed steps first; default: 2 on the CPU, 10 on CUDA")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--simulator", action="store_true",
                   help="also time the streaming loop: simulate on the device, then one training step")
    p.add_argument("--simulator-mode", default="fp32", choices=list(MODES),
                   help="the mode of the streaming loop's training step (default fp32)")
    p.add_argument("--no-record", action="store_true")
    args = p.parse_args()
    modes = args.modes.split(",")
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        p.error(f"unknown mode(s) {', '.join(unknown)}; known: {', '.join(MODES)}")
    for key, value in DEFAULTS["cuda" if args.device.startswith("cuda") else "cpu"].items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    gflop = gflop_per_patch(args.model, args.npix)
    common = {"model": args.model, "npix": args.npix, "batch": args.batch, "steps": args.steps,
              "warmup": args.warmup, "threads": torch.get_num_threads(),
              "gflop_per_patch": {k: float(f"{v:.4g}") for k, v in gflop.items()}}
    print(f"{args.model}, {args.npix}×{args.npix}, batch {args.batch}, {args.steps} steps after "
          f"{args.warmup} warm-up, {args.device}, {common['threads']} threads\n")
    print("| mode | inference patches/s | inference GFLOP/s | training samples/s | training GFLOP/s |")
    print("|---|---|---|---|---|")
    results = []
    for name in modes:
        figures = measure_mode(args, name, gflop)
        results.append(figures)
        print(f"| {name} | {_cell(figures, 'inference_patches_per_s')} | "
              f"{_cell(figures, 'inference_gflop_per_s')} | {_cell(figures, 'training_samples_per_s')} | "
              f"{_cell(figures, 'training_gflop_per_s')} |", flush=True)
    for figures in results:
        if "error" in figures:
            print(f"{figures['mode']} failed: {figures['error']}")

    if args.simulator:
        stream = {"mode": f"streaming_{args.simulator_mode}"}
        try:
            rates = streaming_rates(args, MODES[args.simulator_mode])
            stream.update({k: round(v, 2) for k, v in rates.items()})
            print(f"\nstreaming ({args.simulator_mode}): simulator alone "
                  f"{stream['simulator_patches_per_s']:g} patches/s; simulate + train step "
                  f"{stream['loop_samples_per_s']:g} samples/s")
        except Exception as err:
            stream["error"] = _first_line(err)
            print(f"\nstreaming ({args.simulator_mode}) failed: {stream['error']}")
        results.append(stream)

    if not args.no_record:
        for figures in results:
            record("network", args.device, {**common, **figures})


if __name__ == "__main__":
    main()
