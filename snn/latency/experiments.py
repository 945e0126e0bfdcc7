"""Reproducible latency experiments (``python -m snn.latency.experiments --help``).

``dc-converted``: train a small CNN on static event-count images (N-MNIST recordings or
digits-events), convert it to an SNN of IF neurons (:func:`snn.convert`), calibrate the
Dynamic-Confidence threshold on held-out training samples, then measure on the test split:
accuracy and mean timesteps against running all ``T``, wall time per sample both ways on the
same inputs, and the energy saved (:mod:`snn.energy`). Writes ``dc.json`` and the plots.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn

__all__ = ["small_cnn", "dc_converted", "main"]


def small_cnn(in_channels: int = 2, num_classes: int = 10, size: int = 34) -> nn.Module:
    """Conv(16)-BN-ReLU-AvgPool → Conv(32)-BN-ReLU-AvgPool → FC(128)-ReLU → FC: the ANN that is converted."""
    s = size // 4
    return nn.Sequential(nn.Conv2d(in_channels, 16, 5, padding=2), nn.BatchNorm2d(16), nn.ReLU(), nn.AvgPool2d(2),
                         nn.Conv2d(16, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.AvgPool2d(2),
                         nn.Flatten(), nn.Dropout(0.3), nn.Linear(32 * s * s, 128), nn.ReLU(),
                         nn.Linear(128, num_classes))


def _data(args: argparse.Namespace):
    from snn.datasets import train_val_split
    from snn.latency.data import static_images
    from snn.train import DataSpec, build_datasets
    if args.data:
        spec = DataSpec(data=args.data, labels=args.labels, test_data=args.data, test_labels=args.test_labels,
                        sensor_size=(34, 34, 2), T=1, progress=False)
    else:
        spec = DataSpec(dataset=args.dataset, T=1, progress=False)
    train_frames, test_frames, info = build_datasets(spec)
    train_all, test = static_images(train_frames, args.input_scale), static_images(test_frames, args.input_scale)
    labels = [int(train_frames[i][1]) for i in range(len(train_frames))]
    fit, cal = train_val_split(train_all, args.calibration_fraction, seed=args.seed, stratify=labels)
    return fit, cal, test, info


def dc_converted(args: argparse.Namespace) -> dict:
    """The ``dc-converted`` experiment (see the module docstring); returns what ``dc.json`` holds."""
    import snn
    from snn.conversion.ann_train import ann_accuracy, train_ann
    from snn.latency import calibrate_threshold, compare_wall_time, record_trace
    from snn.train.checkpoint import save_checkpoint, write_json
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fit, cal_set, test, info = _data(args)
    ann = small_cnn(num_classes=info["num_classes"])
    t0 = time.perf_counter()
    if args.ann:
        from snn.train import load_checkpoint
        ck = load_checkpoint(args.ann)
        ann.load_state_dict(ck["model"])
        hist = ck["history"]
    else:
        hist = train_ann(ann, fit, test_data=test, epochs=args.ann_epochs, lr=args.lr,
                         generator=torch.Generator().manual_seed(args.seed))
    ann.eval()
    ann_time = time.perf_counter() - t0
    converted = snn.convert(ann, fit, norm="percentile", percentile=args.percentile, backend=args.backend)
    save_checkpoint({"model": ann.state_dict(), "history": hist}, out / "ann.pt")
    T = args.T
    with torch.no_grad():  # warm up (and let a fused kernel's thread pool start) before fixing the thread count:
        converted(snn.encoders.direct(fit[0][0][None], 2))  # numba's OpenMP start-up resets torch's threads
    if args.threads:
        torch.set_num_threads(args.threads)
    cal = calibrate_threshold(converted, cal_set, T, encode="direct", max_accuracy_drop=args.max_drop,
                              batch_size=args.batch_size, criterion=args.criterion, robust=not args.no_robust)
    cal.save(out)
    dc = cal.dynamic_confidence(converted, chunk=args.chunk)
    res = dc.evaluate(test, encode="direct", batch_size=args.batch_size)
    timing = compare_wall_time(dc, test, encode="direct", batch_size=args.batch_size, repeats=args.repeats)
    trace = record_trace(converted, test, T, encode="direct", batch_size=args.batch_size)
    energy = None
    try:
        from snn.energy import profile
        from snn.latency.data import iter_labelled
        rep = profile(converted, ((snn.encoders.direct(x, T), y) for x, y in
                                  iter_labelled(test, args.batch_size, time_first=False)), measure_time=False)
        energy = rep.early_exit(res.latency)
    except Exception as e:  # pragma: no cover - energy accounting is optional here
        energy = {"error": f"{type(e).__name__}: {e}"}
    d = {"experiment": "dc-converted", "data": {k: v for k, v in info.items()}, "n_fit": len(fit),
         "n_calibration": len(cal_set), "n_test": len(test), "T": T, "ann_test_acc": ann_accuracy(ann, test),
         "ann_epochs": args.ann_epochs, "ann_train_s": ann_time, "backend": args.backend, "percentile": args.percentile,
         "threshold": cal.threshold, "calibration": {k: v for k, v in cal.to_dict().items()
                                                     if k not in ("sweep", "front", "accuracy_per_step")},
         "test_accuracy_per_step": trace.accuracy_per_step().tolist(),
         "test_oracle_mean_timesteps": {m: float(trace.oracle(m)[0].double().mean()) for m in
                                        ("stays_correct", "first_correct")}, "dc_test": res.to_dict(),
         "timing": timing, "energy": energy, "command": " ".join(sys.argv)}
    full_acc, dc_acc = timing["full_accuracy"], res.accuracy
    d["summary"] = {"full_accuracy": full_acc, "dc_accuracy": dc_acc, "accuracy_drop": full_acc - dc_acc,
                    "mean_timesteps": res.mean_latency, "timestep_reduction": 1 - res.mean_latency / T,
                    "full_ms_per_sample": timing["full_ms_per_sample"], "dc_ms_per_sample": timing["dc_ms_per_sample"],
                    "stepwise_ms_per_sample": timing["stepwise_ms_per_sample"],
                    "wall_time_reduction": timing["wall_time_reduction"],
                    "oracle_mean_timesteps_calibration": cal.oracle["stays_correct"]["mean_latency"]}
    write_json(d, out / "dc.json")
    return d


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m snn.latency.experiments", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="experiment", required=True)
    e = sub.add_parser("dc-converted", help="Dynamic Confidence on a converted (high-T) CNN")
    e.add_argument("--data", help="N-MNIST folder (e.g. ../shared/data/nmnist_small); default: --dataset")
    e.add_argument("--labels", default="train1K.txt")
    e.add_argument("--test-labels", default="test100.txt")
    e.add_argument("--dataset", default="digits-events")
    e.add_argument("--input-scale", type=float, default=0.1, help="multiplies the event counts")
    e.add_argument("--calibration-fraction", type=float, default=0.2,
                   help="training samples held out from ANN training to calibrate θ")
    e.add_argument("--ann", help="ann.pt of an earlier run: skip ANN training")
    e.add_argument("--ann-epochs", type=int, default=15)
    e.add_argument("--lr", type=float, default=1e-3)
    e.add_argument("--percentile", type=float, default=99.9, help="threshold balancing percentile")
    e.add_argument("--T", type=int, default=64, help="timestep budget of the converted SNN")
    e.add_argument("--max-drop", type=float, default=0.0, help="allowed accuracy drop on the calibration set")
    e.add_argument("--criterion", choices=("agreement", "accuracy"), default="agreement")
    e.add_argument("--no-robust", action="store_true", help="allow θ below a violating region (see calibrate)")
    e.add_argument("--chunk", type=int, default=1)
    e.add_argument("--batch-size", type=int, default=100)
    e.add_argument("--repeats", type=int, default=5)
    e.add_argument("--backend", default="auto")
    e.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", default="runs/dc-converted")
    args = p.parse_args(argv)
    d = dc_converted(args)
    print(json.dumps(d["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
