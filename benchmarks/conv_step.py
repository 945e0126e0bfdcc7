"""How much of a conv-preset training step the neuron layers take: an Amdahl bound, per layout.

Times one training step (forward, cross-entropy on the mean readout, backward, Adam) of the
``conv`` preset (``snn.models.ConvSNN``: two conv → batch-norm → max-pool → LIF blocks and a
leaky readout) on random N-MNIST-shaped event frames ``[T, B, 2, 34, 34]``, with the neuron
layers three ways, each with channels-last activations (the preset's default) and row-major
ones, all interleaved step by step so that machine drift hits them alike:

* ``torch`` — every neuron layer on the pure-PyTorch reference backend;
* ``numba`` — every neuron layer on the fused Numba kernels (what ``backend="auto"`` picks on CPU);
* ``free-neurons`` — every neuron layer replaced by a Heaviside with a straight-through
  gradient (two elementwise operations): a lower bound for any neuron implementation;
* with ``--compile`` also ``torch+compile`` and ``numba+compile``: the model under
  ``torch.compile(fullgraph=True)`` (the fused kernels are custom operators inside the graph).

``torch / free-neurons`` is the largest per-step speed-up that faster neuron kernels can give
this network on this machine. A profile of one ``numba`` step splits it into convolution,
batch norm, pooling, the neuron kernels and the rest. Writes ``conv_step.json`` and
``conv_step.md``.

Usage::

    python benchmarks/conv_step.py --out runs/bench_conv_step --steady-malloc
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
for _p in (REPO, REPO / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

NEURONS = ("torch", "numba", "free-neurons")
COMPILED = ("torch+compile", "numba+compile")
LAYOUTS = ("channels_last", "row_major")
#: profiler op names (prefixes) of each part of the step; the rest is "other"
PARTS = {"convolution": ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::_convolution"),
         "batch norm": ("aten::native_batch_norm", "aten::batch_norm"),
         "max pooling": ("aten::max_pool2d",),
         "neuron kernels": ("FusedNeuron", "snn::fused_neuron")}


def _free(x: torch.Tensor) -> torch.Tensor:
    return x - x.detach() + (x > 0).to(x.dtype)


def make_step(variant: str, x: torch.Tensor, y: torch.Tensor, channels_last: bool = True) -> Callable[[], None]:
    """One training step of the conv preset for ``variant`` (see the module docstring)."""
    import snn
    from snn.models.registry import build_model
    from snn.neurons.base import BaseNeuron

    torch.manual_seed(0)
    neurons, _, compiled = variant.partition("+")
    model = build_model("conv", backend="numba" if neurons == "numba" else "torch", channels_last=channels_last)
    if neurons == "free-neurons":
        for m in model.modules():
            if isinstance(m, BaseNeuron):
                m.forward = _free  # type: ignore[method-assign]
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    forward = torch.compile(model, fullgraph=True) if compiled else model

    def step() -> None:
        snn.reset(model)
        loss = torch.nn.functional.cross_entropy(forward(x).mean(0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def breakdown(step: Callable[[], None], steps: int = 3) -> dict[str, float]:
    """Self CPU time per step (ms) of each part of ``step`` (:data:`PARTS`, plus "other")."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    parts = dict.fromkeys(list(PARTS) + ["other"], 0.0)
    for ev in prof.key_averages():
        part = next((p for p, names in PARTS.items() if ev.key.startswith(names)), "other")
        parts[part] += ev.self_cpu_time_total / 1e3 / steps
    return parts


def run(T: int, batch: int, steps: int, warmup: int, compiled: bool = False) -> dict:
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(T, batch, 2, 34, 34, generator=gen) < 0.05).float()
    y = torch.randint(0, 10, (batch,), generator=gen)
    variants = NEURONS + (COMPILED if compiled else ())
    fns = {f"{v} {lay}": make_step(v, x, y, lay == "channels_last") for lay in LAYOUTS for v in variants}
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {v: [] for v in fns}
    for _ in range(steps):
        for v, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[v].append((time.perf_counter() - t0) * 1e3)
    med = {v: statistics.median(ts) for v, ts in times.items()}
    import numba
    return {"T": T, "batch": batch, "steps": steps, "torch_threads": torch.get_num_threads(),
            "numba_threads": numba.get_num_threads(), "numba_threading_layer": numba.threading_layer(),
            "median_ms": med,
            "speedup_numba_vs_torch": {lay: med[f"torch {lay}"] / med[f"numba {lay}"] for lay in LAYOUTS},
            "amdahl_bound_vs_torch": {lay: med[f"torch {lay}"] / med[f"free-neurons {lay}"] for lay in LAYOUTS},
            "numba_channels_last_vs_torch_row_major": med["torch row_major"] / med["numba channels_last"],
            "profile_ms_numba_channels_last": breakdown(fns["numba channels_last"], max(1, min(steps, 3)))}


def write(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "conv_step.json").write_text(json.dumps(report, indent=2))
    m = report["median_ms"]
    lines = ["# Conv preset training step (cpu)", "",
             f"T={report['T']}, batch {report['batch']}, median of {report['steps']} interleaved steps; "
             f"{report['torch_threads']} torch threads, {report['numba_threads']} numba threads "
             f"({report['numba_threading_layer']}); malloc: {report.get('malloc', 'default')}.", "",
             "| neuron layers | activations | step ms | vs torch, same layout | vs torch, row-major |",
             "|---|---|---|---|---|"]
    for v in NEURONS + COMPILED:
        for lay in LAYOUTS:
            if f"{v} {lay}" not in m:
                continue
            ms = m[f"{v} {lay}"]
            lines.append(f"| {v} | {lay} | {ms:.1f} | {m[f'torch {lay}'] / ms:.2f}× | {m['torch row_major'] / ms:.2f}× |")
    b = report["amdahl_bound_vs_torch"]
    lines += ["", "Largest speed-up any neuron implementation can give this step (torch / free-neurons): "
              f"{b['channels_last']:.2f}× channels-last, {b['row_major']:.2f}× row-major.", "",
              "Where a `numba`, channels-last step goes (profiler self time, ms per step, timed apart):", "",
              "| part | ms |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in report["profile_ms_numba_channels_last"].items()]
    (out / "conv_step.md").write_text("\n".join(lines) + "\n")


def main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for conv_step.json and conv_step.md")
    p.add_argument("--T", type=int, default=8, help="timesteps (the N-MNIST acceptance run uses 8)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=12, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="also time the model under torch.compile")
    p.add_argument("--steady-malloc", action="store_true",
                   help="keep freed memory in the process (glibc), as benchmarks/neurons.py does")
    args = p.parse_args(argv)
    malloc = "default"
    if args.steady_malloc:
        from neurons import steady_malloc
        if not steady_malloc():
            p.error("--steady-malloc needs glibc's mallopt")
        malloc = "steady (glibc: no mmap, no trim)"
    report = run(args.T, args.batch, args.steps, args.warmup, args.compile)
    report["malloc"] = malloc
    write(report, args.out)
    print((args.out / "conv_step.md").read_text())


if __name__ == "__main__":
    main()
