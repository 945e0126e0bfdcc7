"""``snn energy CHECKPOINT``: operations, energy and latency of a trained model on real data."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "handler"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``energy`` subcommand (called by :func:`snn.cli.build_parser`)."""
    from snn.cli import _add_data_args
    p = subparsers.add_parser(
        "energy", help="synaptic operations, firing rates, energy and latency of a checkpoint",
        description="Profile a checkpoint on its own test split (default) or on other data: per-layer "
                    "neurons, firing rates, SOPs, MACs, membrane updates, memory, energy under a hardware "
                    "model, the equivalent ANN's energy, timesteps and wall time per sample.")
    p.add_argument("checkpoint", nargs="?", help="checkpoint.pt written by `snn train`")
    _add_data_args(p, None)
    p.add_argument("--energy-model", default="cmos45", metavar="NAME|JSON",
                   help="cmos45 (default), cmos45-synaptic, loihi, or a JSON file with the EnergyModel fields")
    p.add_argument("--list-energy-models", action="store_true", help="print the energy models and exit")
    p.add_argument("--max-samples", type=int, metavar="N", help="profile at most N samples")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--backend", default=None, help="neuron backend (default: the checkpoint's)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, or auto")
    p.add_argument("--no-fold-bn", action="store_true", help="count batch norm as 1 MAC per element")
    p.add_argument("--skip-zero-weights", action="store_true", help="zero weights are no synapses (NeuroBench)")
    p.add_argument("--events-as-spikes", action="store_true",
                   help="integer event-count inputs cost SOPs (one per event) instead of MACs")
    p.add_argument("--out", metavar="DIR", help="write energy.json, energy_layers.png, energy_timesteps.png here")
    p.set_defaults(func=handler)
    return p


def handler(args: argparse.Namespace) -> int:
    from snn.energy import ENERGY_MODELS, get_energy_model, profile
    if args.list_energy_models:
        for m in ENERGY_MODELS.values():
            print(f"{m.name:16s} SOP {m.e_sop:g} pJ, MAC {m.e_mac:g} pJ, AC {m.e_ac:g} pJ, neuron update "
                  f"{m.e_neuron_update:g} pJ, spike {m.e_spike:g} pJ\n{'':16s} {m.citation}")
        return 0
    if args.checkpoint is None:
        raise ValueError("a checkpoint is required (or --list-energy-models)")
    if args.max_samples is not None and args.max_samples < 1:
        raise ValueError(f"--max-samples must be ≥ 1, got {args.max_samples}")
    energy_model = get_energy_model(args.energy_model)
    from snn.cli import load_checkpoint_and_data
    from snn.train.loop import check_device
    model, _, test, info = load_checkpoint_and_data(args)
    report = profile(model, test, energy_model=energy_model, batch_size=args.batch_size,
                     max_samples=args.max_samples, device=check_device(args.device),
                     fold_batchnorm=not args.no_fold_bn, skip_zero_weights=args.skip_zero_weights,
                     graded_inputs="events" if args.events_as_spikes else "macs",
                     label=Path(args.checkpoint).parent.name or str(args.checkpoint))
    print(report.table())
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        d = report.to_dict()
        d.update(checkpoint=str(args.checkpoint), data=info)
        from snn.train.checkpoint import write_json
        write_json(json.loads(json.dumps(d, default=str)), out / "energy.json")
        paths = report.plot(out)
        print(f"wrote {out / 'energy.json'}, {', '.join(str(p) for p in paths)}")
    return 0
