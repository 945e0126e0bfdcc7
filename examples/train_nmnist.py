"""Train the `conv` preset on the real N-MNIST recordings from Python.

Shows: ``snn.train.DataSpec`` (a folder of ``.bs2`` recordings + label lists → cached event
frames), ``snn.train.TrainConfig`` and ``snn.train.train`` (checkpoint, metrics.json,
training.png and raster.png in ``--out``). Data: ``$SNN_SHARED_DATA/nmnist_small`` (default
``../shared/data/nmnist_small`` beside the checkout: 1,000 train / 100 test recordings); where
that folder is absent the embedded ``digits-events`` dataset is used instead (with a note).

    python examples/train_nmnist.py                     # T = 8, 10 epochs
    python examples/train_nmnist.py --T 16 --epochs 15 --out runs/examples/nmnist-T16
    python examples/train_nmnist.py --smoke --out /tmp/x   # CI: 64 recordings, 1 epoch

Measured at the defaults on 2 CPU cores: 93.0 % test accuracy on the 100 N-MNIST
test recordings after 10 epochs (94 % best), firing rate 0.15, in 43 s (2 idle cores; 2-3 min when
the cores are shared).
An existing run folder is never overwritten: pass ``--resume`` or another ``--out``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from _data import nmnist_root
from snn.train import DataSpec, TrainConfig, train

def subset_labels(src: Path, n: int, dst: Path) -> str:
    """Write the first ``n`` entries of a label list to ``dst`` (a quick subset for --smoke)."""
    lines = [ln for ln in src.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("\n".join(lines[:n]) + "\n")
    return str(dst)


def data_spec(args: argparse.Namespace) -> DataSpec:
    root = nmnist_root(args.data)
    if not (root / "train1K.txt").is_file():
        if args.data:
            raise FileNotFoundError(f"--data {root} holds no train1K.txt")
        print(f"note: N-MNIST recordings not found at {root}; training on the embedded digits-events instead")
        # smoke: 8×8 frames keep one epoch over the 1,438 digits short
        return DataSpec(dataset="digits-events", T=args.T, downsample=0.25 if args.smoke else None,
                        progress=False)
    train_labels, test_labels = root / "train1K.txt", root / "test100.txt"
    if args.smoke:                                  # a 64 / 32 recording subset
        train_labels = subset_labels(train_labels, 64, Path(args.out) / "smoke-train.txt")
        test_labels = subset_labels(test_labels, 32, Path(args.out) / "smoke-test.txt")
    return DataSpec(data=str(root), labels=str(train_labels), test_data=str(root), test_labels=str(test_labels),
                    sensor_size=(34, 34, 2), T=args.T, progress=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="N-MNIST folder with train1K.txt/test100.txt (default: shared data)")
    p.add_argument("--T", type=int, default=8, help="time bins per recording")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--backend", default="auto", help="neuron backend: auto, torch, numba, cupy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--smoke", action="store_true", help="tiny settings for CI (seconds)")
    p.add_argument("--out", default="runs/examples/train_nmnist")
    args = p.parse_args()
    if args.smoke:
        args.T, args.epochs = 2, 1

    cfg = TrainConfig(data=data_spec(args), model="conv", epochs=args.epochs, batch_size=args.batch_size,
                      lr=args.lr, backend=args.backend, seed=args.seed, out=args.out, resume=args.resume,
                      progress=not args.smoke)
    metrics = train(cfg)
    for h in metrics["epochs"]:
        print(f"epoch {h['epoch']:2d}  train acc {100 * h['train_acc']:5.1f}%  test acc {100 * h['test_acc']:5.1f}%  "
              f"firing rate {h['firing_rate']:.3f}  ({h['epoch_time_s']:.0f} s)")
    print(f"test accuracy: {100 * metrics['final']['test_acc']:.2f}% on {metrics['data']['n_test']} test samples "
          f"({metrics['data']['source'].split(' (')[0]})")
    print(f"run folder: {args.out} (checkpoint.pt, metrics.json, training.png, raster.png)")


if __name__ == "__main__":
    main()
