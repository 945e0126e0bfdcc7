"""How much of a conv-preset training step the neuron layers take: an Amdahl bound.

Times one training step (forward, cross-entropy on the mean readout, backward, Adam) of the
``conv`` preset (``snn.models.ConvSNN``: two conv → batch-norm → max-pool → LIF blocks and a
leaky readout) on random N-MNIST-shaped event frames ``[T, B, 2, 34, 34]``, three ways,
interleaved step by step so that machine drift hits all three alike:

* ``torch`` — every neuron layer on the pure-PyTorch reference backend;
* ``numba`` — every neuron layer on the fused Numba kernels (what ``backend="auto"`` picks on CPU);
* ``free-neurons`` — every neuron layer replaced by a Heaviside with a straight-through
  gradient (two elementwise operations): a lower bound for any neuron implementation.

``torch / free-neurons`` is the largest per-step speed-up that faster neuron kernels can give
this network on this machine. Writes ``conv_step.json`` and ``conv_step.md``.

Usage::

    python benchmarks/conv_step.py --out runs/bench_conv_step
    python benchmarks/conv_step.py --out /tmp/c --batch 4 --steps 2   # smoke test
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _free(x: torch.Tensor) -> torch.Tensor:
    return x - x.detach() + (x > 0).to(x.dtype)


def make_step(variant: str, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    """One training step of the conv preset for ``variant`` (see the module docstring)."""
    import snn
    from snn.models.registry import build_model
    from snn.neurons.base import BaseNeuron

    torch.manual_seed(0)
    model = build_model("conv", backend="numba" if variant == "numba" else "torch")
    if variant == "free-neurons":
        for m in model.modules():
            if isinstance(m, BaseNeuron):
                m.forward = _free  # type: ignore[method-assign]
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def step() -> None:
        snn.reset(model)
        loss = torch.nn.functional.cross_entropy(model(x).mean(0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def run(T: int, batch: int, steps: int, warmup: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(T, batch, 2, 34, 34, generator=gen) < 0.05).float()
    y = torch.randint(0, 10, (batch,), generator=gen)
    variants = ("torch", "numba", "free-neurons")
    fns = {v: make_step(v, x, y) for v in variants}
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(steps):
        for v, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[v].append((time.perf_counter() - t0) * 1e3)
    med = {v: statistics.median(ts) for v, ts in times.items()}
    import numba
    return {"T": T, "batch": batch, "steps": steps, "torch_threads": torch.get_num_threads(),
            "numba_threads": numba.get_num_threads(), "numba_threading_layer": numba.threading_layer(),
            "median_ms": med, "speedup_numba_vs_torch": med["torch"] / med["numba"],
            "amdahl_bound_vs_torch": med["torch"] / med["free-neurons"]}


def write(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "conv_step.json").write_text(json.dumps(report, indent=2))
    m = report["median_ms"]
    lines = ["# Conv preset training step (cpu)", "",
             f"T={report['T']}, batch {report['batch']}, median of {report['steps']} interleaved steps; "
             f"{report['torch_threads']} torch threads, {report['numba_threads']} numba threads "
             f"({report['numba_threading_layer']}).", "",
             "| neuron layers | step ms | vs torch |", "|---|---|---|"]
    lines += [f"| {v} | {ms:.1f} | {m['torch'] / ms:.2f}× |" for v, ms in m.items()]
    lines += ["", f"Largest speed-up any neuron implementation can give this step: "
              f"{report['amdahl_bound_vs_torch']:.2f}× (torch / free-neurons)."]
    (out / "conv_step.md").write_text("\n".join(lines) + "\n")


def main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for conv_step.json and conv_step.md")
    p.add_argument("--T", type=int, default=8, help="timesteps (the N-MNIST acceptance run uses 8)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=12, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=3)
    args = p.parse_args(argv)
    report = run(args.T, args.batch, args.steps, args.warmup)
    write(report, args.out)
    print((args.out / "conv_step.md").read_text())


if __name__ == "__main__":
    main()
