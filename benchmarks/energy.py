"""Energy benchmark: the reference model presets on the real N-MNIST recordings.

For each preset (``snn.models.PRESETS``) it profiles the model with
:func:`snn.energy.profile` on the real N-MNIST test recordings (``test100.txt`` of
``../shared/data/nmnist_small``, 10 equal time bins per recording, 34×34×2 event-count
frames) and reports, per sample: accuracy, firing rate, activation sparsity, SOPs, MACs
(the first layer sees event counts: graded input), membrane updates, energy under the
``cmos45`` (Horowitz 2014), ``cmos45-synaptic`` and ``loihi`` (Davies et al. 2018) models, the
energy of the same architecture run once as an ANN (``cmos45``), the ``cmos45`` energy when
every input event counts as one spike (``graded_inputs="events"``), and wall time per sample.
With NeuroBench installed (``pip install --no-deps neurobench snntorch``) it adds NeuroBench
2.x's ``SynapticOperations`` / ``ActivationSparsity`` on the same model and data.

Presets listed in ``--train`` are trained first with ``snn.train`` on the 1,000 real
training recordings (``--epochs``, default 2; an existing checkpoint in ``--out`` is
reused); the others keep their seeded random initialisation and are labelled "random init".

Usage::

    python benchmarks/energy.py --out runs/bench_energy                 # conv trained 2 epochs
    python benchmarks/energy.py --out /tmp/e --train none --max-samples 20   # smoke test
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snn.energy import neurobench_metrics, profile  # noqa: E402
from snn.models import PRESETS, build_model  # noqa: E402
from snn.train import DataSpec, TrainConfig, build_datasets, load_model, train  # noqa: E402
from snn.train.checkpoint import write_json  # noqa: E402
from snn.train.loop import model_kwargs_for  # noqa: E402

_REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("SNN_SHARED_DATA", _REPO.parent / "shared" / "data")) / "nmnist_small"


def _spec(data: Path, T: int, cache_dir: str | None) -> DataSpec:
    return DataSpec(data=str(data), labels=str(data / "train1K.txt"), test_data=str(data),
                    test_labels=str(data / "test100.txt"), sensor_size=(34, 34, 2), T=T, cache_dir=cache_dir,
                    progress=False)


def _model(preset: str, args, info: dict) -> tuple[torch.nn.Module, str]:
    if preset in args.train:
        run = Path(args.out) / preset
        ck = run / "checkpoint.pt"
        if not ck.exists():
            cfg = TrainConfig(data=_spec(Path(args.data), args.T, args.cache_dir), model=preset, epochs=args.epochs,
                              batch_size=32, backend=args.backend, device="cpu", seed=0, out=str(run), progress=False)
            t0 = time.perf_counter()
            train(cfg)
            print(f"  trained {preset}: {args.epochs} epochs in {time.perf_counter() - t0:.0f} s", flush=True)
        model, ckd = load_model(ck, backend=args.backend)
        return model, f"trained {ckd['epoch']} ep"
    torch.manual_seed(0)
    return build_model(preset, **model_kwargs_for(preset, info, args.backend, {})), "random init"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(DEFAULT_DATA), help="folder of the N-MNIST recordings (default: %(default)s)")
    p.add_argument("--presets", default="conv,conv-plif,mlp,mlp2", help="comma-separated presets")
    p.add_argument("--train", default="conv", help="presets to train first (comma-separated, or 'none')")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--T", type=int, default=10)
    p.add_argument("--max-samples", type=int, default=None, help="profile at most this many test recordings")
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--backend", default="auto")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--no-neurobench", action="store_true")
    p.add_argument("--out", default="runs/bench_energy")
    args = p.parse_args(argv)
    args.train = [] if args.train == "none" else args.train.split(",")
    data = Path(args.data)
    if not (data / "test100.txt").is_file():
        print(f"N-MNIST recordings not found at {data} (pass --data)", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    _, test, info = build_datasets(_spec(data, args.T, args.cache_dir))
    rows = []
    for preset in args.presets.split(","):
        if preset not in PRESETS:
            raise SystemExit(f"unknown preset {preset!r}; presets: {sorted(PRESETS)}")
        model, status = _model(preset, args, info)
        rep = profile(model, test, batch_size=args.batch_size, max_samples=args.max_samples, label=preset)
        rep.save_json(out / f"{preset}_energy.json")
        rep.plot(out, prefix=f"{preset}_energy")
        s = rep.summary()
        row = {"preset": preset, "weights": status, **{k: s[k] for k in (
            "samples", "timesteps", "accuracy", "firing_rate", "activation_sparsity", "sops", "macs",
            "membrane_updates", "neurons", "synapses_per_timestep", "ann_macs", "wall_ms_per_sample", "params")},
            "energy_nj": {m: rep.with_energy_model(m).energy_pj() / 1e3
                          for m in ("cmos45", "cmos45-synaptic", "loihi")},
            "ann_energy_nj": s["ann_energy_pj"] / 1e3,
            "events_as_spikes_nj": profile(model, test, batch_size=args.batch_size, max_samples=args.max_samples,
                                           graded_inputs="events", measure_time=False).energy_pj() / 1e3}
        if not args.no_neurobench:
            try:
                nb = neurobench_metrics(model, test, batch_size=args.batch_size, max_samples=args.max_samples)
                row["neurobench"] = nb
            except ImportError as e:
                row["neurobench"] = f"not run: {e}"
        rows.append(row)
        print(f"\n== {preset} ({status})\n{rep.table()}", flush=True)
    write_json({"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                "data": info, "rows": rows}, out / "energy_benchmark.json")
    print("\n" + markdown(rows))
    (out / "energy_benchmark.md").write_text(markdown(rows) + "\n")
    return 0


def markdown(rows: list[dict]) -> str:
    """The benchmark table (per sample; energies in nJ)."""
    head = ["preset", "weights", "acc", "rate", "SOPs", "MACs", "updates", "cmos45 nJ", "synaptic-only nJ",
            "Loihi nJ", "cmos45 nJ, events as SOPs", "ANN nJ", "ms/sample", "NeuroBench ACs / MACs / sparsity"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        nb = r.get("neurobench")
        nbs = (f"{nb['Effective_ACs']:.4g} / {nb['Effective_MACs']:.4g} / {nb['ActivationSparsity']:.4f}"
               if isinstance(nb, dict) else "-")
        e = r["energy_nj"]
        acc = "-" if r["accuracy"] is None else f"{100 * r['accuracy']:.0f}%"
        cells = [r["preset"], r["weights"], acc, f"{r['firing_rate']:.3f}", f"{r['sops']:.4g}", f"{r['macs']:.4g}",
                 f"{r['membrane_updates']:.4g}", f"{e['cmos45']:.4g}", f"{e['cmos45-synaptic']:.4g}",
                 f"{e['loihi']:.4g}", f"{r['events_as_spikes_nj']:.4g}", f"{r['ann_energy_nj']:.4g}",
                 f"{r['wall_ms_per_sample']:.3g}", nbs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
