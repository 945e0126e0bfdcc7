"""Real-data conversion experiment: train ReLU and QCFS ANNs on accumulated event frames, convert
them, and report accuracy against T.

    python -m snn.conversion.experiment --data nmnist --out runs/conversion   # ../shared/data/nmnist_small
    python -m snn.conversion.experiment --data digits --out runs/conversion   # embedded digits-events

Each sample's events are summed into one ``[2, 34, 34]`` count image
(``FrameDataset(..., n_time_bins=1)``, :class:`~snn.conversion.data.StaticFrames`), the input
of the ANN and, repeated at every step, of the SNN. The ANN is :func:`event_cnn`: 2× average
pooling of the count image, two conv-BN-activation-pool blocks (32, 64 channels) and a hidden
layer of 256. Per variant the folder
holds ``ann.pt`` (loadable by ``snn convert`` without ``--model``) and one
``conversion.json``/``.png`` per conversion setting; ``summary.json`` collects the curves.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor, nn

from snn.conversion.ann_train import ann_accuracy, train_ann
from snn.conversion.converter import convert
from snn.conversion.data import StaticFrames
from snn.conversion.report import conversion_report, save_report
from snn.train.checkpoint import save_checkpoint, write_json

__all__ = ["load_frames", "event_cnn", "VARIANTS", "run_experiment", "main"]

FACTORY = "snn.conversion.experiment:event_cnn"

#: name → (activation, pooling, conversion settings to try)
VARIANTS: dict[str, tuple[str, str, list[dict[str, Any]]]] = {
    "relu-avgpool": ("relu", "avg", [{"norm": "max"}, {"norm": "percentile", "percentile": 99.99},
                                     {"norm": "percentile", "percentile": 99.9}]),
    "relu-maxpool": ("relu", "max", [{"norm": "max"}, {"norm": "percentile", "percentile": 99.99}]),
    "qcfs2-avgpool": ("qcfs:2:2", "avg", [{}]),
    "qcfs4-avgpool": ("qcfs:4:2", "avg", [{}]),
}


def event_cnn(activation: str = "relu", pool: str = "avg", in_channels: int = 2, num_classes: int = 10,
              input_size: int = 34) -> nn.Sequential:
    """The experiment's ANN for ``[B, in_channels, input_size, input_size]`` count images.

    ``AvgPool2d(2) → [Conv3×3 → BN → act → pool(2)] × 2 (32, 64 ch) → Flatten → Linear(256) → act
    → Dropout(0.2) → Linear(num_classes)``. The input pooling averages neighbouring event counts
    (34×34 → 17×17); ``pool`` is ``"avg"`` or ``"max"`` for the two block poolings; ``activation``
    as :func:`snn.conversion.make_activation` (``"relu"``, ``"qcfs:4:2"``, ...).
    """
    from snn.conversion.activations import make_activation
    if pool not in ("avg", "max"):
        raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
    pooling = nn.AvgPool2d if pool == "avg" else nn.MaxPool2d
    side = input_size // 2 // 2 // 2
    return nn.Sequential(
        nn.AvgPool2d(2),
        nn.Conv2d(in_channels, 32, 3, padding=1), nn.BatchNorm2d(32), make_activation(activation), pooling(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), make_activation(activation), pooling(2),
        nn.Flatten(), nn.Linear(64 * side * side, 256), make_activation(activation), nn.Dropout(0.2),
        nn.Linear(256, num_classes))


def _stack(ds: StaticFrames) -> tuple[Tensor, Tensor]:
    xs, ys = zip(*(ds[i] for i in range(len(ds))))
    return torch.stack(xs), torch.tensor(ys)


def load_frames(data: str, root: Optional[str] = None, scale: float = 0.25, cache_dir: Optional[str] = None,
                progress: bool = False) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """``((x_train, y_train), (x_test, y_test))``, accumulated event frames ``[N, 2, 34, 34]`` × ``scale``.

    ``data="nmnist"``: the real recordings in ``root`` (default ``../shared/data/nmnist_small``
    beside the checkout, or ``$SNN_SHARED_DATA/nmnist_small``) with ``train1K.txt``/``test100.txt``;
    ``data="digits"``: the embedded digits-events dataset.

    Raises:
        FileNotFoundError: the N-MNIST folder is missing.
        ValueError: unknown ``data``.
    """
    from snn.datasets import EventFolder, FrameDataset, open_dataset
    if data == "nmnist":
        if root is None:
            shared = Path(os.environ.get("SNN_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
            root = str(shared / "nmnist_small")
        splits = [EventFolder(root, f, sensor_size=(34, 34, 2)) for f in ("train1K.txt", "test100.txt")]
        names = ["nmnist_small-train", "nmnist_small-test"]
    elif data == "digits":
        splits = [open_dataset("digits-events", train=t) for t in (True, False)]
        names = ["digits-events", "digits-events"]
    else:
        raise ValueError(f"data must be 'nmnist' or 'digits', got {data!r}")
    out = []
    for ev, name in zip(splits, names):
        frames = FrameDataset(ev, n_time_bins=1, cache_dir=cache_dir, name=name, progress=progress)
        out.append(_stack(StaticFrames(frames, scale=scale)))
    return out[0], out[1]


def run_experiment(data: str, out: str | os.PathLike, *, variants: Optional[list[str]] = None, epochs: int = 12,
                   T_max: int = 256, seed: int = 0, root: Optional[str] = None, cache_dir: Optional[str] = None,
                   progress: bool = False) -> dict[str, Any]:
    """Train, convert and report every variant on ``data``; returns (and writes) the summary."""
    (xtr, ytr), (xte, yte) = load_frames(data, root=root, cache_dir=cache_dir, progress=progress)
    out = Path(out) / data
    summary: dict[str, Any] = {"data": data, "n_train": len(ytr), "n_test": len(yte), "T_max": T_max, "runs": {}}
    for name in variants or list(VARIANTS):
        activation, pool, settings = VARIANTS[name]
        torch.manual_seed(seed)
        kwargs = {"activation": activation, "pool": pool}
        ann = event_cnn(**kwargs)
        t0 = time.perf_counter()
        history = train_ann(ann, (xtr, ytr), test_data=(xte, yte), epochs=epochs, batch_size=32, lr=2e-3,
                            generator=torch.Generator().manual_seed(seed), progress=progress)
        train_s = time.perf_counter() - t0
        save_checkpoint({"model": ann.state_dict(), "factory": FACTORY, "factory_kwargs": kwargs,
                         "history": history}, out / name / "ann.pt")
        acc = ann_accuracy(ann, (xte, yte))
        print(f"[{data}] {name}: ANN test accuracy {100 * acc:.2f}% after {epochs} epochs ({train_s:.0f} s)",
              flush=True)
        for conv in settings:
            tag = "-".join(f"{v}" for v in conv.values()) or "qcfs"
            snn_model = convert(ann, xtr, **conv)
            rep = conversion_report(snn_model, (xte, yte), ann=ann, T_max=T_max)
            rep.update(variant=name, activation=activation, pool=pool, ann_train_history=history)
            save_report(rep, out / name, name=f"conversion-{tag}", title=f"{data} {name} ({tag})")
            summary["runs"][f"{name}/{tag}"] = {k: rep[k] for k in ("T", "snn_accuracy", "agreement", "ann_accuracy",
                                                                    "mean_firing_rate", "seconds")}
            curve = " ".join(f"{t}:{100 * a:.0f}" for t, a in zip(rep["T"], rep["snn_accuracy"]))
            print(f"    {tag}: SNN accuracy by T  {curve}  ({rep['seconds']:.0f} s)", flush=True)
    write_json(summary, out / "summary.json")
    return summary


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m snn.conversion.experiment", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=("nmnist", "digits"), default="nmnist")
    p.add_argument("--root", help="N-MNIST folder (default ../shared/data/nmnist_small)")
    p.add_argument("--variants", nargs="*", choices=list(VARIANTS), help="default: all")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--T-max", type=int, default=256, dest="T_max")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir")
    p.add_argument("--out", default="runs/conversion")
    a = p.parse_args(argv)
    run_experiment(a.data, a.out, variants=a.variants, epochs=a.epochs, T_max=a.T_max, seed=a.seed, root=a.root,
                   cache_dir=a.cache_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
