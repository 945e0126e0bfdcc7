"""Benchmark of multi-step LIF layers: snn backends side by side with peer libraries.

For each problem size ``T×B×N`` (timesteps × batch × neurons, input ``[T, B, N]`` float32)
and each implementation it measures

* ``fwd_ms``: inference forward (``torch.no_grad``), median of ``--repeats`` runs;
* ``train_ms``: forward + backward with a dense random output gradient, median;
* ``saved_MB``: training memory the layer holds between forward and backward: bytes of the
  tensors autograd saves for the backward pass (unique storages, seen through
  ``torch.autograd.graph.saved_tensors_hooks``; works on every device, independent of
  allocator caching). The output is left out (every implementation has it, and the next
  layer keeps it); the input counts when it is saved, since saving it keeps it alive until
  the backward pass where it would otherwise be freed (snn's CPU kernels save the input
  instead of a membrane sequence). (``tracemalloc`` cannot see torch's allocator
  and RSS deltas are dominated by allocator caching, so neither is used.)
* ``peak_MB`` (CUDA only): peak of ``torch.cuda.max_memory_allocated`` during forward +
  backward above the memory held before (input and output gradient already allocated), so
  it includes the output, temporaries and the input gradient;
* ``fwd_x_floor`` / ``train_x_floor``: time as a multiple of the bytes-moved floor at the
  machine's measured streaming bandwidth (``bandwidth_GBps``: a large ``Tensor.copy_``,
  bytes read + bytes written). Floor bytes per neuron-timestep, float32: forward 8 (read x,
  write the spike); forward + backward 20 (forward 8, plus backward reading the output
  gradient and x — or one saved float32 residual — and writing the input gradient).
  snn's CPU kernels move these 20 (their backward recomputes the membranes from x); the GPU
  kernels move 24 (they save the pre-reset membrane: 4 B written, 4 B read).

Allocator: on Linux, glibc hands large freed buffers back to the kernel (``munmap``, heap
trimming), so a layer's fresh ``[T, B, N]`` output and input gradient are new pages on every
step and each 4 KiB page faults on first write. On a VM that can cost more than the layer's
arithmetic, and how much varies from run to run with the heap's layout. ``--steady-malloc``
turns that off for the whole process (``mallopt``: no ``mmap`` for large blocks, no
trimming), the state a long training run or an LD_PRELOADed jemalloc/tcmalloc reaches;
every implementation runs under the same setting and the report says which one was used.

All implementations run the same LIF (decay 0.5, threshold 1, hard reset to 0, ATan
surrogate where the library has it); see ``benchmarks/README.md`` for the exact models.
``--surrogate sigmoid`` runs the Sigmoid surrogate (α = 4, SpikingJelly's default) instead,
in the implementations that have it (Norse has none and is skipped).

Usage::

    python benchmarks/neurons.py --out runs/bench_neurons              # CPU, the three sizes
    python benchmarks/neurons.py --out runs/bench_gpu --device cuda
    python benchmarks/neurons.py --out runs/bench_steady --steady-malloc  # no page-fault noise
    python benchmarks/neurons.py --out /tmp/b --sizes 10x4x64 --repeats 3  # smoke test
    python benchmarks/neurons.py --out runs/bench_sigmoid --surrogate sigmoid
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SIZES = ((100, 64, 1024), (8, 32, 16384), (4, 128, 4096))
BETA, THRESHOLD = 0.5, 1.0
FLOOR_FWD, FLOOR_TRAIN = 8, 20  # bytes per neuron-timestep (float32), see module docstring
SIGMOID_ALPHA = 4.0
SURROGATE = "atan"  # set by --surrogate: "atan" (α = 2) or "sigmoid" (α = SIGMOID_ALPHA)
Layer = Callable[[torch.Tensor], torch.Tensor]


# -- implementations: name -> factory(device) returning a layer [T, B, N] -> spikes -----
def _snn(backend: str) -> Callable[[str], Layer]:
    def make(device: str) -> Layer:
        from snn.neurons import LIF
        return LIF(beta=BETA, v_threshold=THRESHOLD, v_reset=0.0, surrogate=SURROGATE, backend=backend).to(device)
    return make


def _snn_compiled(backend: str) -> Callable[[str], Layer]:
    """A layer under ``torch.compile(fullgraph=True)``: ``"torch"`` compiles the whole time loop
    into one graph, a fused backend its custom operators (the kernels, unchanged) and the glue."""
    def make(device: str) -> Layer:
        # every size and grad mode compiles BaseNeuron.forward anew; the default limit of 8
        # recompilations per code object would end the run (the same limit holds for every
        # compiled implementation here)
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        return torch.compile(_snn(backend)(device), fullgraph=True)
    return make


def _snn_kernel(device: str) -> Layer:
    """The fused backend called directly, without the module's input checks (kernel cost)."""
    from snn.neurons import LIF, resolve_backend
    spec = LIF(beta=BETA, v_threshold=THRESHOLD, v_reset=0.0, surrogate=SURROGATE).to(device).spec(3)
    impl = resolve_backend("auto", device, spec)

    def layer(x: torch.Tensor) -> torch.Tensor:
        return impl.run(x, torch.zeros_like(x[0]), spec, False)[0]
    return layer


def _torch_loop(device: str) -> Layer:
    """The plain PyTorch loop a user would write (the surrogate as an autograd.Function)."""
    class Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z):
            ctx.save_for_backward(z)
            return (z >= 0).to(z.dtype)

        @staticmethod
        def backward(ctx, g):
            (z,) = ctx.saved_tensors
            if SURROGATE == "sigmoid":
                sg = torch.sigmoid(SIGMOID_ALPHA * z)
                return g * (SIGMOID_ALPHA * sg * (1 - sg))
            return g / (1 + (torch.pi * z) ** 2)  # ATan, alpha = 2

    def layer(x: torch.Tensor) -> torch.Tensor:
        v, out = torch.zeros_like(x[0]), []
        for xt in x:
            h = BETA * v + xt
            s = Spike.apply(h - THRESHOLD)
            v = h * (1 - s)
            out.append(s)
        return torch.stack(out)
    return layer


def _spikingjelly(compiled: bool) -> Callable[[str], Layer]:
    def make(device: str) -> Layer:
        from spikingjelly.activation_based import functional, neuron, surrogate
        # SJ: H = V - (V - V_reset)/tau + X with decay_input=False, so tau = 1/(1 - beta)
        node = neuron.LIFNode(tau=1.0 / (1.0 - BETA), decay_input=False, v_threshold=THRESHOLD, v_reset=0.0,
                              surrogate_function=surrogate.Sigmoid(alpha=SIGMOID_ALPHA) if SURROGATE == "sigmoid"
                              else surrogate.ATan(), step_mode="m").to(device)
        run = torch.compile(node) if compiled else node

        def layer(x: torch.Tensor) -> torch.Tensor:
            functional.reset_net(node)
            return run(x)
        return layer
    return make


def _norse(device: str) -> Layer:
    if SURROGATE != "atan":
        raise RuntimeError(f"norse has no {SURROGATE} surrogate")
    import norse.torch as nt
    # LIFBoxCell: v += dt·tau_mem_inv·(v_leak − v + x); dt·tau_mem_inv = 1 − beta
    # (v_norse = (1 − beta)·v, so the threshold scales by 1 − beta for the same spikes)
    p = nt.LIFBoxParameters(tau_mem_inv=torch.tensor((1.0 - BETA) / 1e-3),
                            v_th=torch.tensor(THRESHOLD * (1.0 - BETA)), v_reset=torch.tensor(0.0))
    cell = nt.LIFBoxCell(p).to(device)

    def layer(x: torch.Tensor) -> torch.Tensor:
        state, out = None, []
        for xt in x:
            s, state = cell(xt, state)
            out.append(s)
        return torch.stack(out)
    return layer


def _snntorch(device: str) -> Layer:
    import snntorch
    from snntorch import surrogate
    grad = surrogate.sigmoid(slope=SIGMOID_ALPHA) if SURROGATE == "sigmoid" else surrogate.atan()
    lif = snntorch.Leaky(beta=BETA, threshold=THRESHOLD, spike_grad=grad, reset_mechanism="zero").to(device)

    def layer(x: torch.Tensor) -> torch.Tensor:
        mem, out = lif.init_leaky(), []
        for xt in x:
            s, mem = lif(xt, mem)
            out.append(s)
        return torch.stack(out)
    return layer


IMPLS: dict[str, tuple[Callable[[str], Layer], tuple[str, ...], Optional[str]]] = {
    # name: (factory, devices, package needed)
    "snn-torch": (_snn("torch"), ("cpu", "cuda"), None),
    "snn-numba": (_snn("numba"), ("cpu", "cuda"), "numba"),
    "snn-torch+compile": (_snn_compiled("torch"), ("cpu", "cuda"), None),
    "snn-numba+compile": (_snn_compiled("numba"), ("cpu", "cuda"), "numba"),
    "snn-cupy": (_snn("cupy"), ("cuda",), "cupy"),
    "snn-cupy+compile": (_snn_compiled("cupy"), ("cuda",), "cupy"),
    "snn-auto-kernel": (_snn_kernel, ("cpu", "cuda"), None),
    "torch-loop": (_torch_loop, ("cpu", "cuda"), None),
    "spikingjelly": (_spikingjelly(False), ("cpu", "cuda"), "spikingjelly"),
    "spikingjelly+compile": (_spikingjelly(True), ("cpu", "cuda"), "spikingjelly"),
    "norse": (_norse, ("cpu", "cuda"), "norse"),
    "snntorch": (_snntorch, ("cpu", "cuda"), "snntorch"),
}


# -- measurement ----------------------------------------------------------------------
def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def median_ms(fn: Callable[[], object], repeats: int, device: str) -> float:
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def streaming_bandwidth(device: str, nbytes: int = 1 << 28, repeats: int = 5) -> float:
    """GB/s of a large ``Tensor.copy_`` (bytes read + bytes written)."""
    a = torch.ones(nbytes // 4, device=device)
    b = torch.empty_like(a)
    b.copy_(a)
    ms = min(median_ms(lambda: b.copy_(a), 1, device) for _ in range(repeats))
    return 2 * nbytes / ms / 1e6


def saved_bytes(layer: Layer, x: torch.Tensor, g: torch.Tensor) -> int:
    """Bytes autograd keeps for backward, the output excluded (see module docstring)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        seen[st.data_ptr()] = st.nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = layer(x)
    seen.pop(out.untyped_storage().data_ptr(), None)
    out.backward(g)
    x.grad = None
    return sum(seen.values())


def cuda_peak_bytes(layer: Layer, x: torch.Tensor, g: torch.Tensor) -> int:
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    layer(x).backward(g)
    torch.cuda.synchronize()
    x.grad = None
    return torch.cuda.max_memory_allocated() - base


def bench_one(make: Callable[[str], Layer], T: int, B: int, N: int, device: str, repeats: int,
              warmup: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(T, B, N, generator=gen) * 1.2).to(device)  # ~20 % firing
    g = torch.randn(T, B, N, generator=gen).to(device)
    layer = make(device)
    xg = x.clone().requires_grad_()

    def fwd():
        with torch.no_grad():
            return layer(x)

    def train():
        layer(xg).backward(g)
        xg.grad = None
    for _ in range(warmup):
        fwd()
        train()
    rate = float(fwd().float().mean())
    row = {"fwd_ms": median_ms(fwd, repeats, device), "train_ms": median_ms(train, repeats, device),
           "saved_bytes": saved_bytes(layer, xg, g), "firing_rate": rate}
    if device == "cuda":
        row["peak_bytes"] = cuda_peak_bytes(layer, xg, g)
    return row


def _version(pkg: str) -> Optional[str]:
    """Installed version of an importable package, ``None`` if it cannot be imported."""
    try:
        mod = importlib.import_module(pkg)
    except Exception:
        return None
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return getattr(mod, "__version__", "?")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def steady_malloc() -> bool:
    """Stop glibc from returning freed memory to the kernel (see the module docstring).
    Returns False where there is no glibc ``mallopt`` (other libc, macOS, Windows)."""
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 1 << 30))


def run(args: argparse.Namespace) -> dict:
    device = args.device
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes] if args.sizes else list(SIZES)
    names = args.only or [n for n, (_, devs, _) in IMPLS.items() if device in devs]
    bw = streaming_bandwidth(device)
    info = {"device": device, "python": platform.python_version(), "torch": torch.__version__,
            "platform": platform.platform(), "cpu": _cpu_name(),
            "torch_threads": torch.get_num_threads(),
            "bandwidth_GBps": round(bw, 2), "repeats": args.repeats, "malloc": args.malloc,
            "surrogate": SURROGATE,
            "packages": {p: _version(p) for p in ("numba", "cupy", "spikingjelly", "norse", "snntorch")}}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    if info["packages"]["numba"]:
        import numba
        info["numba_threads"] = numba.get_num_threads()
    results = []
    for T, B, N in sizes:
        elems = T * B * N
        for name in names:
            make, devs, pkg = IMPLS[name]
            row = {"impl": name, "T": T, "B": B, "N": N}
            if device not in devs:
                row["skipped"] = f"does not run on {device}"
            elif pkg and _version(pkg) is None:
                row["skipped"] = f"{pkg} is not installed"
            else:
                try:
                    row.update(bench_one(make, T, B, N, device, args.repeats, args.warmup))
                    row["fwd_x_floor"] = row["fwd_ms"] / (FLOOR_FWD * elems / bw / 1e6)
                    row["train_x_floor"] = row["train_ms"] / (FLOOR_TRAIN * elems / bw / 1e6)
                except Exception as err:  # a peer failing is a result, not a crash
                    row["skipped"] = f"{type(err).__name__}: {err}".splitlines()[0][:300]
            results.append(row)
            print(_row_md(row, results), flush=True)
    return {"info": info, "results": results}


def _ref(results: list[dict], row: dict, impl: str) -> Optional[dict]:
    return next((r for r in results if r["impl"] == impl and (r["T"], r["B"], r["N"]) == (row["T"], row["B"], row["N"])
                 and "skipped" not in r), None)


def _row_md(row: dict, results: list[dict]) -> str:
    size = f"{row['T']}×{row['B']}×{row['N']}"
    if "skipped" in row:
        return f"| {size} | {row['impl']} | – | – | – | – | – | – | – | – | skipped: {row['skipped']} |"
    sj, ref = _ref(results, row, "spikingjelly"), _ref(results, row, "snn-torch")
    vs_sj = f"{sj['train_ms'] / row['train_ms']:.2f}×" if sj else "–"
    mem_rel = f"{100 * row['saved_bytes'] / ref['saved_bytes']:.0f} %" if ref and ref["saved_bytes"] else "–"
    peak = f"{row['peak_bytes'] / 1e6:.3g}" if "peak_bytes" in row else "–"
    return (f"| {size} | {row['impl']} | {row['fwd_ms']:.3g} | {row['fwd_x_floor']:.2f} | {row['train_ms']:.3g} | "
            f"{row['train_x_floor']:.2f} | {vs_sj} | {row['saved_bytes'] / 1e6:.3g} | {mem_rel} | {peak} | "
            f"firing rate {row['firing_rate']:.2f} |")


HEADER = ("| T×B×N | implementation | fwd ms | fwd ×floor | fwd+bwd ms | fwd+bwd ×floor | fwd+bwd speed-up vs "
          "SpikingJelly | saved MB | saved vs snn-torch | peak MB | note |\n" + "|---" * 11 + "|")


def write(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "neurons.json").write_text(json.dumps(report, indent=2))
    info = report["info"]
    lines = [f"# LIF layer benchmark ({info['device']})", "",
             f"{info.get('gpu') or info['cpu']}; torch {info['torch']}, {info['torch_threads']} torch threads"
             + (f", {info['numba_threads']} numba threads" if "numba_threads" in info else "")
             + f"; streaming bandwidth {info['bandwidth_GBps']} GB/s; median of {info['repeats']} runs; "
             + f"allocator: {info.get('malloc', 'default')}; surrogate: {info.get('surrogate', 'atan')}.", "",
             "Floors: forward 8 B, forward+backward 20 B per neuron-timestep at the measured bandwidth.", "",
             HEADER] + [_row_md(r, report["results"]) for r in report["results"]]
    (out / "neurons.md").write_text("\n".join(lines) + "\n")


def main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for neurons.json and neurons.md")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--sizes", nargs="*", help="TxBxN problem sizes (default: the three reference sizes)")
    p.add_argument("--only", nargs="*", choices=sorted(IMPLS), help="implementations to run (default: all)")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2, help="untimed runs first (JIT compilation, caches)")
    p.add_argument("--steady-malloc", action="store_true",
                   help="keep freed memory in the process (glibc mallopt) so timings exclude page faults")
    p.add_argument("--surrogate", default="atan", choices=["atan", "sigmoid"],
                   help="surrogate derivative of every implementation (sigmoid: alpha 4; Norse has none)")
    args = p.parse_args(argv)
    global SURROGATE
    SURROGATE = args.surrogate
    args.malloc = "default"
    if args.steady_malloc:
        if not steady_malloc():
            p.error("--steady-malloc needs glibc's mallopt")
        args.malloc = "steady (glibc: no mmap, no trim)"
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but torch.cuda.is_available() is False")
    print(HEADER)
    report = run(args)
    write(report, args.out)
    print(f"\nwrote {args.out / 'neurons.json'} and {args.out / 'neurons.md'}")


if __name__ == "__main__":
    main()
