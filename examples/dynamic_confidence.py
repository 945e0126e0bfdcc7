"""Dynamic Confidence (Li, Jones & Furber, ICCV 2023): stop each sample as soon as the SNN is
confident, on a CNN converted to an SNN, and compare with always running the full T.

Shows: ``snn.latency.calibrate_threshold`` (sweeps θ on held-out calibration images, picks the
fastest θ within ``--max-drop`` of full-T accuracy; writes the Pareto front and latency
histogram) and ``DynamicConfidence.evaluate`` (decided samples leave the batch, so compute and
wall time fall; ``compare_wall_time`` measures that against one full-T forward). Data: N-MNIST count images from ``$SNN_SHARED_DATA/nmnist_small`` (default
``../shared/data`` beside the checkout), else the embedded ``digits-events`` (with a note).

    python examples/dynamic_confidence.py               # ANN 8 epochs, converted, T = 64
    python examples/dynamic_confidence.py --T 128 --max-drop 0.01
    python examples/dynamic_confidence.py --smoke --out /tmp/x   # CI: 1 epoch, T = 8

Measured at the defaults on 2 CPU cores: the converted N-MNIST CNN scores 90 % at
T = 64 (15.4 ms/sample); Dynamic Confidence (θ = 0.37) 91 % at 19.7 mean steps (−69 %), 5.0 ms/sample;
18 s in all.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.utils.data import Subset

import snn
from snn.conversion import train_ann
from snn.datasets import train_val_split
from snn.latency import calibrate_threshold, compare_wall_time
from _data import count_images, make_cnn
from snn.train.checkpoint import write_json

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="N-MNIST folder with train1K.txt/test100.txt (default: shared data)")
    p.add_argument("--epochs", type=int, default=8, help="ANN training epochs")
    p.add_argument("--T", type=int, default=64, help="timestep budget of the SNN")
    p.add_argument("--max-drop", type=float, default=0.005, help="allowed accuracy drop on calibration data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="tiny settings for CI (seconds)")
    p.add_argument("--out", default="runs/examples/dynamic_confidence")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    train_all, test, _ = count_images(args.data, 0.25)
    fit, cal_set = train_val_split(train_all, 0.2, seed=args.seed)    # θ is calibrated on held-out images
    if args.smoke:
        fit, cal_set, test = Subset(fit, range(128)), Subset(cal_set, range(64)), Subset(test, range(32))
        args.epochs, args.T = 1, 8

    ann = make_cnn()
    train_ann(ann, fit, epochs=args.epochs, batch_size=32, lr=2e-3, generator=torch.Generator().manual_seed(args.seed))
    net = snn.convert(ann.eval(), fit, norm="percentile", percentile=99.99)

    cal = calibrate_threshold(net, cal_set, args.T, encode="direct", max_accuracy_drop=args.max_drop)
    cal.save(args.out)                                               # dc_calibration.json, dc_pareto.png, dc_latency.png
    print(f"calibrated θ = {cal.threshold:.4f}: {100 * cal.accuracy:.2f}% at {cal.mean_latency:.1f} mean steps "
          f"on calibration data (full T = {args.T}: {100 * cal.full_accuracy:.2f}%)")

    # chunk = 4: the batch shrinks every 4 steps (fewer kernel calls; decisions do not depend on it)
    dc = cal.dynamic_confidence(net, chunk=4)
    res = dc.evaluate(test, encode="direct")                         # per sample: res.prediction, res.latency
    timing = compare_wall_time(dc, test, encode="direct", repeats=1, stepwise_baseline=False)  # vs full T
    print(f"full T = {args.T:3d}:        test accuracy {100 * timing['full_accuracy']:6.2f}%  "
          f"{timing['full_ms_per_sample']:6.2f} ms/sample")
    print(f"Dynamic Confidence: test accuracy {100 * res.accuracy:6.2f}%  {timing['dc_ms_per_sample']:6.2f} ms/sample"
          f"  mean latency {res.mean_latency:.1f} / {args.T} steps ({100 * (1 - res.mean_latency / args.T):.0f}% saved)")
    write_json({"threshold": cal.threshold, "dynamic_confidence": res.to_dict(), "timing": timing},
               Path(args.out) / "dc_test.json")


if __name__ == "__main__":
    main()
