"""``snn convert CHECKPOINT --model module:factory --calibration DATA``: convert, evaluate, report."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

__all__ = ["add_parser", "run_convert"]

log = logging.getLogger("snn")


def _json_dict(text: str) -> dict:
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({e})") from None
    if not isinstance(d, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return d


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``snn convert`` to the ``snn`` command (see :mod:`snn.cli`)."""
    from snn.cli import _sensor_size
    p = subparsers.add_parser(
        "convert", help="convert a trained ANN into an SNN of IF neurons and report accuracy vs T",
        description="Convert a trained ANN (any torch.fx-traceable CNN/MLP) into an SNN of integrate-and-fire "
                    "neurons (BN folding, threshold balancing on calibration data, QCFS), then measure the "
                    "SNN's accuracy against the number of timesteps T in one run of --T-max steps. DATA is a "
                    ".pt tensor file (x or {'x','y'}), a dataset name (e.g. digits-events) or a folder of event "
                    "recordings (accumulated into one frame per sample).")
    p.add_argument("checkpoint", help="the ANN's weights (state dict, or a dict with 'model'/'state_dict')")
    p.add_argument("--model", metavar="MODULE:FACTORY",
                   help="builds the ANN, e.g. snn.models:vgg16_bn (default: the factory stored in the checkpoint)")
    p.add_argument("--model-args", type=_json_dict, metavar="JSON", help="keyword arguments of the factory")
    p.add_argument("--calibration", required=True, metavar="DATA", help="calibration inputs (training data)")
    p.add_argument("--calibration-labels", metavar="FILE", help="label list for a --calibration folder")
    p.add_argument("--test-data", metavar="DATA",
                   help="labelled test data (default: the test split when --calibration names a dataset)")
    p.add_argument("--test-labels", metavar="FILE", help="label list for a --test-data folder")
    p.add_argument("--root", metavar="DIR", help="where tonic datasets live (dataset names other than digits-events)")
    p.add_argument("--sensor-size", type=_sensor_size, metavar="W,H,P", help="of event folders (default: inferred)")
    p.add_argument("--input-scale", type=float, default=1.0, help="multiplies event-count frames (default 1)")
    p.add_argument("--cache-dir", metavar="DIR", help="frame cache folder (default $SNN_CACHE or ~/.cache/snn)")
    p.add_argument("--norm", choices=("max", "percentile"), default="max", help="threshold statistic")
    p.add_argument("--percentile", type=float, default=99.99, help="for --norm percentile (default 99.99)")
    p.add_argument("--channel-wise", action="store_true", help="one threshold per channel")
    p.add_argument("--max-pool", choices=("spiking", "avg"), default="spiking",
                   help="spiking max pooling (default) or replace it by average pooling")
    p.add_argument("--num-calibration", type=int, default=1024, help="calibration samples (default 1024)")
    p.add_argument("--T-max", type=int, default=256, dest="T_max", help="timesteps of the evaluation run")
    p.add_argument("--max-test", type=int, help="evaluate at most this many test samples")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--chunk", type=int, default=32, help="timesteps per SNN call (memory)")
    p.add_argument("--backend", default="auto", help="neuron backend: auto, torch, numba, cupy")
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto")
    p.add_argument("--out", default="runs/convert", help="folder for snn.pt, conversion.json, conversion.png")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_convert)
    return p


def run_convert(args: argparse.Namespace) -> int:
    """Handler of ``snn convert``; returns the exit status."""
    import torch

    from snn.conversion import convert
    from snn.conversion.io import load_ann, save_converted
    from snn.conversion.report import conversion_report, save_report
    from snn.conversion.sources import open_static
    from snn.datasets import DATASETS

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    ann, spec = load_ann(args.checkpoint, args.model, args.model_args)
    kw = dict(root=args.root, sensor_size=args.sensor_size, scale=args.input_scale, cache_dir=args.cache_dir,
              progress=not args.no_progress)
    calib = open_static(args.calibration, args.calibration_labels, train=True, **kw)
    if args.test_data is not None:
        test = open_static(args.test_data, args.test_labels, train=False, **kw)
    elif args.calibration.lower() in DATASETS:
        test = open_static(args.calibration, train=False, **kw)
    else:
        test = None
    snn_model = convert(ann, calib, norm=args.norm, percentile=args.percentile, channel_wise=args.channel_wise,
                        max_pool=args.max_pool, backend=args.backend, max_samples=args.num_calibration,
                        batch_size=args.batch_size, device=device)
    out = Path(args.out)
    save_converted(snn_model, out / "snn.pt", spec["factory"], spec["factory_kwargs"])
    if test is None:
        print(f"converted {len(snn_model.neurons())} activations; no --test-data, so no report; "
              f"SNN in {out / 'snn.pt'}")
        return 0
    report = conversion_report(snn_model, test, ann=ann, T_max=args.T_max, batch_size=args.batch_size,
                               chunk=args.chunk, max_samples=args.max_test, device=device)
    report["checkpoint"] = str(args.checkpoint)
    report["model"] = spec
    paths = save_report(report, out, title=f"{Path(args.checkpoint).name}: accuracy vs T")
    curve = ", ".join(f"T={t}: {100 * a:.1f}%" for t, a in zip(report["T"], report["snn_accuracy"]))
    print(f"ANN {100 * report['ann_accuracy']:.2f}% | SNN {curve} | mean firing rate "
          f"{report['mean_firing_rate']:.3f} on {report['n_samples']} samples; results in {paths['json'].parent}")
    return 0
