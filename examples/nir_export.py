"""Export a trained SNN to a NIR file (Neuromorphic Intermediate Representation), import it
back, and check that both give the same outputs.

Shows: ``snn.nir.export_nir`` (model + a sample input ``[T, B, ...]`` → ``model.nir``, with
``dt`` seconds per timestep in the graph metadata) and ``snn.nir.import_nir`` (→ snn modules
on ``[T, B, ...]``). The model is the `mlp` preset (flatten → 256 LIF → linear → leaky
readout) trained briefly on N-MNIST frames (``$SNN_SHARED_DATA/nmnist_small``, default
``../shared/data``; else digits-events, with a note). The `conv` preset does not export: its
max pooling has no NIR equivalent (use average/sum pooling for NIR-bound models). Needs
``pip install nir`` (``pip install "snn[nir]"``).

    python examples/nir_export.py                       # 5 epochs, T = 8
    python examples/nir_export.py --dt 1e-4 --out runs/examples/nir-dt1e-4
    python examples/nir_export.py --smoke --out /tmp/x     # CI: 64 recordings, 1 epoch

Measured at the defaults on 2 CPU cores: the mlp preset reaches 87 % on the N-MNIST test
recordings after 5 epochs; the imported model's outputs are identical (max |Δ| = 0), in 6 s.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

import snn
from snn.datasets import collate_time_first
from snn.models import build_model
from snn.nir import export_nir, import_nir
from _data import frames
from snn.train import evaluate, scores

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--T", type=int, default=8, help="time bins per recording")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--dt", type=float, default=1e-3, help="seconds per timestep, stored in the NIR graph")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="tiny settings for CI (seconds)")
    p.add_argument("--out", default="runs/examples/nir_export")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    if args.smoke:
        args.T, args.epochs = 2, 1
    train, test, _ = frames(args.T)
    if args.smoke:
        train, test = Subset(train, range(64)), Subset(test, range(32))

    model = build_model("mlp", in_features=2 * 34 * 34, num_classes=10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(args.epochs):
        model.train()
        for x, y in DataLoader(train, 32, shuffle=True, collate_fn=collate_time_first):
            loss = F.cross_entropy(scores(model(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            snn.reset(model)
    model.eval()
    print(f"trained mlp preset: test accuracy {100 * evaluate(model, test)['acc']:.2f}%")

    x, _ = next(iter(DataLoader(test, 16, collate_fn=collate_time_first)))    # [T, 16, 2, 34, 34]
    path = Path(args.out) / "model.nir"
    graph = export_nir(model, x, path, dt=args.dt)
    print(f"wrote {path}: nodes {', '.join(sorted(graph.nodes))}")

    model2 = import_nir(path).eval()
    with torch.no_grad():
        y1, y2 = model(x), model2(x)
    snn.reset(model), snn.reset(model2)
    same = torch.equal(y1, y2)
    print(f"imported model: outputs {'identical' if same else 'DIFFERENT'} on {x.shape[1]} test samples "
          f"(max |Δ| = {(y1 - y2).abs().max().item():.3g}); test accuracy {100 * evaluate(model2, test)['acc']:.2f}%")
    if not torch.allclose(y1, y2, atol=1e-5):
        raise SystemExit("round trip through NIR changed the outputs")


if __name__ == "__main__":
    main()
