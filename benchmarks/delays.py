"""Benchmarks of the delay synapses (snn.delays) and the N-MNIST delay experiment.

``python benchmarks/delays.py speed [--threads 1] [--configs shd,ssc] [--quick]``
    Training step (forward + backward, input gradient included; for σ = 1 and Dcls1d also
    without it, as for the first layer of a network, whose input is data) time and peak memory of one
    delay layer against the ``dcls`` package's ``Dcls1d`` (the paper's implementation;
    ``pip install --no-deps dcls``) used as the paper uses it (``[T, B, N] → [B, N, T]``,
    left-pad by ``D``, ``Dcls1d``, back) and against a plain dense ``conv1d`` with the same
    ``D + 1`` taps, at the SHD configuration (B=128, T=100, 140→256, max delay 25) and an
    SSC-sized one (512→512, the hidden layers of the 3 × 512 SSC network), at σ = D/2 (start
    of training), 1 and 0.5 (after the decay), truncate 3 and 6; plus inference with integer
    delays against the dense ``conv1d`` equivalent (one-hot kernels). Inputs: 10 % spikes.
    Every case runs twice in fresh subprocesses: time = best of ``--repeats`` steps after two
    warm-up steps; peak memory = rise of the resident set (VmHWM, reset through
    /proc/self/clear_refs) during one step, with glibc returning large blocks to the OS
    (``MALLOC_MMAP_THRESHOLD_=65536``) so that every allocator (torch, oneDNN, Numba) counts;
    "saved" = tensors autograd keeps from forward to backward (parameters and input excluded).

``python benchmarks/delays.py nmnist [--seeds 0,1,2] [--downsample 0.5] [--hidden 64]``
    The real N-MNIST recordings (../shared/data/nmnist_small, 1,000 train / 100 test) as a
    temporal task: 34×34×2 frames downsampled to 17×17×2 = 578 channels over 30 bins of
    10 ms, and a ``DelaySNN`` 578 → H → 10 with no delays / fixed random delays / learned
    delays (max 10 bins; readout delays too); the no-delay and fixed-delay networks get more
    hidden neurons so that every network has the same number of trainable parameters. The
    learned one follows the paper's recipe (σ schedule, 100× position lr, clamping) and is
    tested after rounding to integer delays.

Both write ``<out>/<name>.json`` and ``<out>/<name>.md`` atomically (``--out``, default
``runs/bench_delays``).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


# ----------------------------------------------------------------------------- one case
def _rss(key: str) -> int:
    return int(re.search(rf"{key}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024


def run_case(case: dict) -> dict:
    """Time and measure one configuration in this process (called in a fresh subprocess)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    B, T, I, O, D = case["B"], case["T"], case["I"], case["O"], case["D"]
    kind, train, sigma = case["kind"], case["mode"] == "train", case.get("sigma")
    # input_grad=False: the layer as the first of a network, whose input (data) needs no gradient
    xin = (torch.rand(T, B, I) < 0.1).float().requires_grad_(train and case.get("input_grad", True))
    gy = torch.randn(T, B, O)
    info: dict = {}
    if kind == "ours":
        from snn.delays import DelayLinear
        layer = DelayLinear(I, O, D, sigma=sigma if sigma else D / 2, bias=False, backend=case.get("backend", "auto"),
                            truncate=case.get("truncate", 3.0))
        if not train:
            layer.round_delays_()
        info["window"] = layer.window()

        def step():
            y = layer(xin)
            if train:
                y.backward(gy)
            return layer
    else:
        # the paper's usage: [T, B, N] → [B, N, T], left-pad by D, Dcls1d/conv1d, back to [T, B, N]
        if kind == "dcls":
            from DCLS.construct.modules import Dcls1d
            mod = Dcls1d(I, O, kernel_count=1, dilated_kernel_size=D + 1, bias=False, version="gauss")
            with torch.no_grad():
                mod.SIG.fill_(max(sigma - 0.27, 0.0))   # DCLS: σ = |SIG| + 0.27
        else:
            mod = torch.nn.Conv1d(I, O, D + 1, bias=False)
            if not train:  # the dense equivalent of integer delays: a one-hot kernel per synapse
                with torch.no_grad():
                    mod.weight.zero_().scatter_(2, torch.randint(0, D + 1, (O, I, 1)), 1.0)

        def step():
            y = mod(F.pad(xin.permute(1, 2, 0), (D, 0))).permute(2, 0, 1)
            if train:
                y.backward(gy)
            return mod

    ctx = torch.enable_grad() if train else torch.no_grad()
    with ctx:
        layer_or_mod = step()  # warm-up (Numba compilation, oneDNN primitives)
        step()
        for p in layer_or_mod.parameters():
            p.grad = None
        if xin.grad is not None:
            xin.grad = None
        if case["measure"] == "memory":
            Path("/proc/self/clear_refs").write_text("5")
            base = _rss("VmRSS")
            step()
            peak = (_rss("VmHWM") - base) / 2**20
            return {**case, **info, "peak_mb": peak, "saved_mb": saved_for_backward(step, layer_or_mod, xin)}
        times = []
        for _ in range(case["repeats"]):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
    if kind == "ours":
        info["backend"] = layer_or_mod.backend_used
    return {**case, **info, "ms": 1e3 * min(times), "ms_median": 1e3 * sorted(times)[len(times) // 2],
            "threads": torch.get_num_threads()}


def saved_for_backward(step, module, x) -> float:
    """MB of tensors autograd keeps between forward and backward (unique storages, leaving out
    the parameters and the layer input, which exist anyway)."""
    import torch
    if not torch.is_grad_enabled():  # inference: nothing is saved
        return 0.0
    skip = {p.untyped_storage().data_ptr() for p in module.parameters()} | {x.untyped_storage().data_ptr()}
    seen: dict[int, int] = {}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in skip:
            seen[st.data_ptr()] = st.nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(seen.values()) / 2**20


def spawn(case: dict, threads: int | None = None) -> dict:
    """Run ``case`` twice in fresh subprocesses: once for time, once (with glibc returning large
    blocks to the OS) for peak memory."""
    out = {}
    for measure in ("time", "memory"):
        env = dict(os.environ, PYTHONPATH=str(REPO))
        if measure == "memory":
            env["MALLOC_MMAP_THRESHOLD_"] = "65536"
        if threads:
            env.update(OMP_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        r = subprocess.run([sys.executable, __file__, "_case", json.dumps({**case, "measure": measure})], env=env,
                           capture_output=True, text=True, timeout=3600)
        if r.returncode != 0:
            raise RuntimeError(f"case {case} failed:\n{r.stderr[-3000:]}")
        out.update(json.loads(r.stdout.strip().splitlines()[-1]))
    out.pop("measure")
    return out


# ----------------------------------------------------------------------------- speed
def speed(args: argparse.Namespace) -> None:
    from snn.train.checkpoint import atomic_write_text
    shapes = {"shd": dict(B=128, T=100, I=140, O=256, D=25), "ssc": dict(B=128, T=100, I=512, O=512, D=25)}
    if args.quick:
        shapes = {"shd-quick": dict(B=32, T=50, I=140, O=256, D=25)}
    elif args.configs:
        shapes = {k: shapes[k] for k in args.configs.split(",")}
    rows = []
    for name, shp in shapes.items():
        D = shp["D"]
        cases = [dict(kind="dcls", mode="train", sigma=D / 2), dict(kind="conv", mode="train")]
        cases += [dict(kind="ours", mode="train", sigma=s, truncate=k) for s in (D / 2, 1.0, 0.5) for k in (3.0, 6.0)
                  if not (s == D / 2 and k == 6.0)]
        # the 140 → 256 layer is the first of the SHD network: its input is data, needing no gradient
        cases += [dict(kind="dcls", mode="train", sigma=D / 2, input_grad=False),
                  dict(kind="ours", mode="train", sigma=1.0, truncate=3.0, input_grad=False)]
        cases += [dict(kind="conv", mode="infer"), dict(kind="ours", mode="infer")]
        for c in cases:
            res = spawn({**shp, **c, "config": name, "repeats": args.repeats}, args.threads)
            rows.append(res)
            print(f"{name:10s} {res['kind']:5s} {res['mode']:5s} input_grad={res.get('input_grad', True)!s:5s} "
                  f"sigma={res.get('sigma')!s:5s} "
                  f"truncate={res.get('truncate')!s:4s} "
                  f"{res['ms']:9.1f} ms  (median {res['ms_median']:.1f})  peak {res['peak_mb']:8.1f} MB  "
                  f"saved {res.get('saved_mb', 0):6.1f} MB  "
                  f"{res.get('backend', '')} W={res.get('window', '')}", flush=True)
    out = Path(args.out)
    atomic_write_text(json.dumps(rows, indent=2), out / "delays.json")
    atomic_write_text(speed_table(rows), out / "delays.md")
    print(speed_table(rows))


def speed_table(rows: list[dict]) -> str:
    lines = ["| config | implementation | step | σ | truncate | W taps | time (ms) | vs Dcls1d | peak memory (MB) "
             "| memory vs Dcls1d | saved for backward (MB) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for cfg in dict.fromkeys(r["config"] for r in rows):
        sub = [r for r in rows if r["config"] == cfg]
        refs = {r.get("input_grad", True): r for r in sub if r["kind"] == "dcls"}
        conv_inf = next((r for r in sub if r["kind"] == "conv" and r["mode"] == "infer"), None)
        for r in sub:
            base = refs.get(r.get("input_grad", True)) if r["mode"] == "train" else conv_inf
            name = {"dcls": "Dcls1d", "conv": "dense conv1d", "ours": f"DelayLinear ({r.get('backend')})"}[r["kind"]]
            speedup = f"{base['ms'] / r['ms']:.2f}×" if base else ""
            mem = f"{base['peak_mb'] / max(r['peak_mb'], 1e-3):.1f}×" if base else ""
            sig = "" if r.get("sigma") is None else f"{r['sigma']:g}"
            trunc = f"{r['truncate']:g}" if r.get("truncate") and r["mode"] == "train" else ""
            step = "inference" if r["mode"] != "train" else "fwd+bwd" if r.get("input_grad", True) else \
                "fwd+bwd, no input grad"
            lines.append(f"| {cfg} (B={r['B']}, T={r['T']}, {r['I']}→{r['O']}, D={r['D']}) | {name} | "
                         f"{step} | {sig} | {trunc} | "
                         f"{r.get('window', r['D'] + 1)} | "
                         f"{r['ms']:.1f} | {speedup} | {r['peak_mb']:.1f} | {mem} | {r.get('saved_mb', 0):.1f} |")
    lines.append("\nInference rows compare against the dense conv1d inference row; training rows against Dcls1d "
                 "(\"no input grad\" rows against Dcls1d without input gradient: the layer as the first of a network).")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- N-MNIST
def nmnist_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "nmnist_small"))
    p.add_argument("--T", type=int, default=30, help="time bins")
    p.add_argument("--window", type=float, default=10_000, help="bin length in µs")
    p.add_argument("--downsample", type=float, default=0.5, help="spatial factor (0.5: 17×17×2 = 578 channels)")
    p.add_argument("--hidden", type=int, default=64, help="hidden neurons of the learned-delay network")
    p.add_argument("--max-delay", type=int, default=10)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--variants", default="none,fixed,learned")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--out", default="runs/bench_delays")


def _width_for_budget(budget: int, make) -> int:
    """Smallest hidden width whose model has at least ``budget`` trainable parameters."""
    h = 1
    while sum(p.numel() for p in make(h).parameters() if p.requires_grad) < budget:
        h += 1
    return h


def nmnist(args: argparse.Namespace) -> None:
    import torch
    from torch.utils.data import DataLoader

    from snn.datasets import collate_time_first
    from snn.models.shd import DelaySNN
    from snn.train import train_epoch
    from snn.train.checkpoint import atomic_write_text, write_json
    from snn.train.data import DataSpec, build_datasets

    spec = DataSpec(data=args.data, labels="train1K.txt", test_data=args.data, test_labels="test100.txt", T=args.T,
                    time_window=args.window, downsample=args.downsample, cache_dir=args.cache_dir, progress=False)
    train_ds, test_ds, info = build_datasets(spec)
    n_in = int(torch.tensor(info["frame_shape"][1:]).prod())
    print(f"N-MNIST frames {info['frame_shape']} → {n_in} channels × {args.T} bins of {args.window / 1000:g} ms; "
          f"{len(train_ds)} train / {len(test_ds)} test recordings", flush=True)

    def make(variant: str, hidden: int) -> DelaySNN:
        return DelaySNN(in_features=n_in, num_classes=10, hidden=(hidden,), max_delay=args.max_delay,
                        channel_bins=None, delays=variant, tau=5.0, readout_tau=5.0, dropout=0.2)

    budget = sum(p.numel() for p in make("learned", args.hidden).parameters() if p.requires_grad)
    widths = {v: args.hidden if v == "learned" else _width_for_budget(budget, lambda h, v=v: make(v, h))
              for v in args.variants.split(",")}
    results = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for variant, hidden in widths.items():
            torch.manual_seed(seed)
            model = make(variant, hidden)
            n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
            opt = torch.optim.Adam(model.param_groups(args.lr))
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
            history, t0 = [], time.perf_counter()
            for epoch in range(args.epochs):
                model.on_epoch_start(epoch, args.epochs)
                g = torch.Generator().manual_seed(seed * 1000 + epoch)
                loader = DataLoader(train_ds, args.batch_size, shuffle=True, generator=g,
                                    collate_fn=collate_time_first)
                train_epoch(model, loader, opt, torch.device("cpu"))   # clamps positions after each step
                sched.step()
                if epoch == args.epochs - 1:
                    before_rounding = _accuracy(model, test_ds)
                    model.on_train_end()          # integer delays for the final evaluation
                history.append(_accuracy(model, test_ds))
            row = dict(seed=seed, variant=variant, hidden=hidden, trainable_params=n_params,
                       test_acc=history[-1], test_acc_before_rounding=before_rounding, best_test_acc=max(history),
                       history=history, train_s=time.perf_counter() - t0)
            results.append(row)
            print(f"seed {seed}  {variant:8s} H={hidden:4d}  params {n_params:7d}  final (integer delays) "
                  f"{100 * row['test_acc']:.1f}%  before rounding {100 * before_rounding:.1f}%  "
                  f"best {100 * row['best_test_acc']:.1f}%  ({row['train_s']:.0f} s)", flush=True)
    out = Path(args.out)
    write_json({"args": vars(args), "data": info, "results": results}, out / "delays_nmnist.json")
    atomic_write_text(nmnist_table(results, args), out / "delays_nmnist.md")
    print(nmnist_table(results, args))


def _accuracy(model, ds) -> float:
    import torch
    from torch.utils.data import DataLoader

    from snn.datasets import collate_time_first
    from snn.state import reset
    model.eval()
    correct = n = 0
    with torch.no_grad():
        for x, y in DataLoader(ds, 100, collate_fn=collate_time_first):
            correct += int((model(x).mean(0).argmax(1) == y).sum())
            n += len(y)
            reset(model)
    return correct / n


def nmnist_table(results: list[dict], args: argparse.Namespace) -> str:
    lines = [f"N-MNIST (real recordings: 1,000 train / 100 test), {args.T} bins × {args.window / 1000:g} ms, "
             f"max delay {args.max_delay} bins, {args.epochs} epochs; accuracy on the 100 test recordings after "
             "the last epoch, with delays rounded to integers (before rounding / best epoch in brackets).", "",
             "| variant | hidden | trainable params | " + " | ".join(f"seed {s}" for s in args.seeds.split(","))
             + " | mean | mean before rounding |", "|---|---|---|" + "---|" * (len(args.seeds.split(",")) + 2)]
    for variant in dict.fromkeys(r["variant"] for r in results):
        rows = [r for r in results if r["variant"] == variant]
        accs = " | ".join(f"{100 * r['test_acc']:.0f}% ({100 * r.get('test_acc_before_rounding', r['test_acc']):.0f}% / "
                          f"{100 * r['best_test_acc']:.0f}%)" for r in rows)
        mean = sum(r["test_acc"] for r in rows) / len(rows)
        pre = sum(r.get("test_acc_before_rounding", r["test_acc"]) for r in rows) / len(rows)
        lines.append(f"| {variant} | {rows[0]['hidden']} | {rows[0]['trainable_params']} | {accs} | {100 * mean:.1f}% "
                     f"| {100 * pre:.1f}% |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("speed", help="training/inference time and peak memory vs Dcls1d and conv1d")
    s.add_argument("--quick", action="store_true", help="one small configuration (smoke test)")
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--configs", help="comma-separated subset of: shd, ssc")
    s.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch and Numba (default: their defaults, all cores)")
    s.add_argument("--out", default="runs/bench_delays")
    n = sub.add_parser("nmnist", help="no / fixed / learned delays on the real N-MNIST recordings")
    nmnist_args(n)
    c = sub.add_parser("_case")
    c.add_argument("case")
    args = p.parse_args(argv)
    if args.cmd == "_case":
        print(json.dumps(run_case(json.loads(args.case))))
    elif args.cmd == "speed":
        speed(args)
    else:
        nmnist(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
