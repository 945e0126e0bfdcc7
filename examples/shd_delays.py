"""Learnable synaptic delays (DCLS; Hammouamri, Khalfaoui-Hassani & Masquelier, ICLR 2024):
the `shd-delays` recipe with its training steps written out.

Shows: ``snn.models.build_model("shd-delays", ...)`` (a ``DelaySNN``), ``delay_param_groups``
(positions at 100× the learning rate), ``SigmaSchedule`` + ``set_sigma`` (the Gaussian
kernels narrow over the first quarter of the epochs), ``clamp_delays`` after each optimizer
step and ``round_delays`` at the end (exact integer delays), with test accuracy before and after
rounding. ``snn train --model shd-delays`` runs the same steps through the model's hooks.

Data: SHD when ``--root`` holds it (700 → 140 channels, 100 bins of 10 ms, the paper's
2 × 256 network). By default, offline: a temporal task made of event recordings — N-MNIST
(``$SNN_SHARED_DATA/nmnist_small``, default ``../shared/data``), else digits-events — as
``--T`` time bins of 17×17×2 = 578 input channels, with one hidden layer of 64 neurons.

    python examples/shd_delays.py                       # offline task, 15 epochs
    python examples/shd_delays.py --root ~/data --epochs 150 --batch-size 256   # SHD (tonic layout)
    python examples/shd_delays.py --smoke --out /tmp/x     # CI: 64 samples, 2 epochs

Measured at the defaults on 2 CPU cores: offline N-MNIST task (30 bins × 578 channels,
64 hidden, delays up to 10 steps), 15 epochs: 96 % test accuracy before rounding, 95 % with integer
delays, in 14 s.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

import snn
from snn.datasets import collate_time_first
from snn.delays import (
    SigmaSchedule,
    clamp_delays,
    delay_layers,
    delay_param_groups,
    round_delays,
    set_sigma,
)
from snn.models import build_model
from _data import frame_spec
from snn.train import DataSpec, build_datasets, evaluate, scores
from snn.train.checkpoint import write_json

def data_and_model(args: argparse.Namespace):
    """``(train, test, model, description)``: SHD with the paper's network, else the offline task."""
    if args.root:
        try:
            train, test, info = build_datasets(DataSpec(dataset="shd", root=args.root, T=100, time_window=10_000,
                                                        downsample=0.2, progress=False))
            return train, test, build_model("shd-delays", in_features=140, num_classes=20), "SHD"
        except FileNotFoundError as e:
            print(f"note: no SHD in --root {args.root} ({e}); using the offline task instead")
    ds = 0.25 if args.smoke else 0.5                  # 17×17×2 = 578 channels (smoke: 9×9×2)
    spec = frame_spec(args.T, downsample=ds)
    name = "N-MNIST" if spec.data else "digits-events"
    spec.progress = False
    train, test, info = build_datasets(spec)
    n_in = int(torch.tensor(info["frame_shape"][1:]).prod())
    model = build_model("shd-delays", in_features=n_in, num_classes=info["num_classes"], channel_bins=None,
                        hidden=(args.hidden,), max_delay=args.max_delay, tau=5.0, readout_tau=5.0, dropout=0.2)
    return train, test, model, f"{name}: {args.T} bins × {n_in} channels"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", help="folder holding SHD (tonic layout); default: the offline task")
    p.add_argument("--T", type=int, default=30, help="time bins of the offline task")
    p.add_argument("--hidden", type=int, default=64, help="hidden neurons (offline task)")
    p.add_argument("--max-delay", type=int, default=10, help="largest delay in timesteps (offline task)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="tiny settings for CI (seconds)")
    p.add_argument("--out", default="runs/examples/shd_delays")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    if args.smoke:
        args.T, args.hidden, args.max_delay, args.epochs = 10, 16, 4, 2
    train, test, model, description = data_and_model(args)
    if args.smoke:
        train, test = Subset(train, range(64)), Subset(test, range(32))
    print(f"data: {description}; {len(train)} train / {len(test)} test samples")

    max_delay = model.head.max_delay
    opt = torch.optim.Adam(delay_param_groups(model, lr=args.lr))     # positions at 100× lr, no weight decay
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    sigma = SigmaSchedule(start=max_delay / 2, end=0.5)               # decays over the first 25 % of epochs
    history = []
    for epoch in range(args.epochs):
        set_sigma(model, sigma(epoch, args.epochs))
        model.train()
        g = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        for x, y in DataLoader(train, args.batch_size, shuffle=True, generator=g, collate_fn=collate_time_first):
            loss = F.cross_entropy(scores(model(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            clamp_delays(model)                                       # positions stay in [0, max_delay]
            snn.reset(model)
        sched.step()
        acc = evaluate(model, test)["acc"]
        history.append({"epoch": epoch + 1, "sigma": sigma(epoch, args.epochs), "test_acc": acc})
        print(f"epoch {epoch + 1:2d}  σ = {history[-1]['sigma']:5.2f}  loss {loss.item():.3f}  test acc {100 * acc:.2f}%")

    before = history[-1]["test_acc"]
    round_delays(model)                                               # exact integer delays from now on
    after = evaluate(model, test)["acc"]
    delays = torch.cat([m.delay.detach().flatten() for m in delay_layers(model)])
    print(f"test accuracy before rounding {100 * before:.2f}%, after rounding to integer delays {100 * after:.2f}%")
    print(f"learned delays: mean {delays.mean():.2f}, max {delays.max():.0f} of {max_delay} timesteps")
    write_json({"data": description, "args": vars(args), "history": history, "acc_before_rounding": before,
                "acc_after_rounding": after, "delay_histogram": torch.bincount(delays.long()).tolist()},
               Path(args.out) / "delays.json")


if __name__ == "__main__":
    main()
