"""Train a small ReLU CNN (an ANN) on event-count images, convert it to an SNN, and measure
accuracy against the number of timesteps T.

Shows: ``snn.latency.static_images`` (event frames → one count image per recording),
``snn.conversion.train_ann``, ``snn.convert`` (BN folding, percentile thresholds, IF neurons
with soft reset) and ``snn.conversion.conversion_report`` / ``save_report`` (accuracy for
T = 1, 2, 4, …, T_max next to the ANN's, firing rate per layer; JSON + PNG in ``--out``).
Data: N-MNIST from ``$SNN_SHARED_DATA/nmnist_small`` (default ``../shared/data`` beside the
checkout), else the embedded ``digits-events`` (with a note).

    python examples/convert_cnn.py                      # 10 ANN epochs, T_max = 128
    python examples/convert_cnn.py --norm max --T-max 256 --out runs/examples/convert-max
    python examples/convert_cnn.py --smoke --out /tmp/x    # CI: 128 images, 1 epoch, T_max = 8

Measured at the defaults on 2 CPU cores: ANN 92 % on the 100 N-MNIST test images;
SNN 14 / 69 / 90 / 92 / 91 / 92 % at T = 1 / 2 / 8 / 16 / 64 / 128 (agreement with the ANN 100 % at
T = 128), mean firing rate 0.06, in 17 s.
"""
from __future__ import annotations

import argparse

import torch
from torch.utils.data import Subset

import snn
from snn.conversion import ann_accuracy, conversion_report, save_report, train_ann
from _data import count_images, make_cnn

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="N-MNIST folder with train1K.txt/test100.txt (default: shared data)")
    p.add_argument("--scale", type=float, default=0.25, help="multiplies the event counts")
    p.add_argument("--epochs", type=int, default=10, help="ANN training epochs")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--norm", choices=("max", "percentile"), default="percentile")
    p.add_argument("--percentile", type=float, default=99.99)
    p.add_argument("--T-max", type=int, default=128, help="longest SNN run (accuracy read at 1, 2, 4, …)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="tiny settings for CI (seconds)")
    p.add_argument("--out", default="runs/examples/convert_cnn")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    train, test, source = count_images(args.data, args.scale)
    if args.smoke:
        train, test, args.epochs, args.T_max = Subset(train, range(128)), Subset(test, range(32)), 1, 8

    ann = make_cnn()
    train_ann(ann, train, epochs=args.epochs, batch_size=32, lr=args.lr,
              generator=torch.Generator().manual_seed(args.seed))
    ann.eval()
    print(f"ANN: test accuracy {100 * ann_accuracy(ann, test):.2f}% ({source}, {len(train)} train images)")

    net = snn.convert(ann, train, norm=args.norm, percentile=args.percentile)   # thresholds from train images
    report = conversion_report(net, test, ann=ann, T_max=args.T_max)
    print(f"\n{'T':>5} {'SNN acc':>8} {'agrees w/ ANN':>14}")
    for t, acc, agr in zip(report["T"], report["snn_accuracy"], report["agreement"]):
        print(f"{t:5d} {100 * acc:7.2f}% {100 * agr:13.2f}%")
    print(f"  ANN {100 * report['ann_accuracy']:7.2f}%   mean firing rate {report['mean_firing_rate']:.3f}")
    paths = save_report(report, args.out, title=f"ReLU CNN → SNN ({args.norm})")
    print(f"wrote {paths['json']} and {paths['png']}")


if __name__ == "__main__":
    main()
