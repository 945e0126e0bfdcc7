"""Energy, synaptic operations and firing rates of an SNN on real inputs.

Shows: ``snn.energy.profile`` (per layer and per sample: neurons, firing rate, SOPs, MACs,
membrane updates, energy in pJ under a hardware model, the same network's ANN MAC energy,
latency), ``report.table()``, ``report.save_json``, ``report.plot`` and
``report.with_energy_model`` (the same counts priced on another chip). The model is either a
``snn train`` / ``examples/train_nmnist.py`` run (``--checkpoint``, profiled on that run's test
split) or, by default, the `conv` preset trained here for a few epochs on N-MNIST frames
(``$SNN_SHARED_DATA/nmnist_small``, default ``../shared/data``; else digits-events, with a note).

    python examples/energy_report.py                    # conv preset, 4 epochs, 100 test samples
    python examples/energy_report.py --checkpoint runs/examples/train_nmnist/checkpoint.pt
    python examples/energy_report.py --energy-model loihi --samples 100
    python examples/energy_report.py --smoke --out /tmp/x  # CI: untrained-ish model, 16 samples

Measured at the defaults on 2 CPU cores: conv preset after 4 epochs, 90 % on 100
N-MNIST test samples: 3.2M SOPs + 0.65M MACs, firing rate 0.15, 6.1 µJ per sample (cmos45; 94 µJ on
Loihi) against 18.8 µJ for the same network as an ANN (3.1×), in 18 s.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

import snn
from snn.datasets import collate_time_first
from snn.energy import profile
from snn.models import build_model
from _data import frames
from snn.train import TrainConfig, build_datasets, load_model, scores

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="checkpoint.pt of a training run (default: train the conv preset here)")
    p.add_argument("--T", type=int, default=8, help="time bins (when training here)")
    p.add_argument("--epochs", type=int, default=4, help="training epochs (when training here)")
    p.add_argument("--energy-model", default="cmos45", help="cmos45, cmos45-synaptic, loihi, or a JSON file")
    p.add_argument("--samples", type=int, default=100, help="test samples profiled")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="tiny settings for CI (seconds)")
    p.add_argument("--out", default="runs/examples/energy_report")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    if args.smoke:
        args.T, args.epochs, args.samples = 2, 1, 16

    if args.checkpoint:                               # a trained run and its own test split
        model, ck = load_model(args.checkpoint)
        _, test, _ = build_datasets(TrainConfig.from_dict(ck["config"]).data)
    else:
        train, test, _ = frames(args.T)
        if args.smoke:
            train = Subset(train, range(64))
        model = build_model("conv", num_classes=10)
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        for epoch in range(args.epochs):             # plain BPTT; snn.train.train does this with checkpoints
            model.train()
            for x, y in DataLoader(train, 32, shuffle=True, collate_fn=collate_time_first):
                loss = F.cross_entropy(scores(model(x)), y)   # scores: mean readout membrane over T
                opt.zero_grad()
                loss.backward()
                opt.step()
                snn.reset(model)
            print(f"epoch {epoch + 1}/{args.epochs}: last batch loss {loss.item():.3f}")

    report = profile(model.eval(), test, energy_model=args.energy_model, max_samples=args.samples)
    print(report.table())
    loihi = report.with_energy_model("loihi")
    print(f"\nper sample: {report.energy_pj() / 1e6:.3f} µJ ({args.energy_model}), "
          f"{loihi.energy_pj() / 1e6:.3f} µJ (loihi); the same network as an ANN: {report.ann_energy_pj() / 1e6:.3f} µJ")
    out = Path(args.out)
    report.save_json(out / "energy.json")
    paths = report.plot(out)                          # energy_layers.png, energy_timesteps.png
    print(f"wrote {out / 'energy.json'}, " + ", ".join(str(q) for q in paths))


if __name__ == "__main__":
    main()
