"""``snn compress`` (IIR timestep compression) and the ``--dynamic-confidence`` options of ``snn evaluate``."""
from __future__ import annotations

import argparse
import logging
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

log = logging.getLogger("snn")

__all__ = ["add_parser", "handler", "add_evaluate_options", "run_dynamic_confidence", "load_stage_model"]

CLI_FILE = "compress_cli.json"


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints (e.g. 5,4,3,2,1), got {text!r}") from None


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or comma-separated numbers, got {text!r}") from None


def _rescale(text: str):
    if text in ("none", "rate"):
        return None if text == "none" else "rate"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected none, rate or a positive factor, got {text!r}") from None


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``compress`` subcommand (called by :func:`snn.cli.build_parser`)."""
    from snn.cli import _add_data_args
    p = subparsers.add_parser(
        "compress", help="IIR timestep compression of an SNN (T = 5 → 1)",
        description="IIR-SNN (Chowdhury, Rathi & Roy 2021): retrain at each T of --schedule, initialised from "
                    "the previous stage, with learnable per-layer thresholds and leaks and soft reset, on static "
                    "event-count images (direct encoding). Starts from a `snn train` checkpoint or a fresh "
                    "--model preset. Writes a checkpoint per stage (resumable), compress.json and compress.png.")
    p.add_argument("checkpoint", nargs="?", help="checkpoint.pt of `snn train` to start from (default: a new --model)")
    _add_data_args(p, None)
    p.add_argument("--model", default="conv", help="preset when no checkpoint is given (default: %(default)s)")
    p.add_argument("--schedule", type=_ints, default=[5, 4, 3, 2, 1], metavar="T,T,...",
                   help="timesteps per stage, strictly decreasing (default: 5,4,3,2,1)")
    p.add_argument("--epochs", type=_ints, default=[3], metavar="N[,N...]",
                   help="epochs per stage (one or one per stage)")
    p.add_argument("--lr", type=_floats, default=[1e-3], metavar="LR[,LR...]",
                   help="Adam learning rate per stage, cosine-annealed within a stage (one or one per stage)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--threshold-rescale", type=_rescale, default=None, metavar="none|rate|F",
                   help="before each stage after the first: none (default), rate (match firing rates), or a factor")
    p.add_argument("--no-learn-leak", action="store_true", help="keep each layer's leak fixed")
    p.add_argument("--no-learn-threshold", action="store_true", help="keep thresholds fixed")
    p.add_argument("--select", choices=("best", "last"), default="best", help="epoch kept per stage (validation)")
    p.add_argument("--input-scale", type=float, help="multiplies the event-count images "
                                                      "(default: 1/T of the checkpoint's frames, else 1)")
    p.add_argument("--backend", default="auto", help="neuron backend: auto, torch, numba, cupy")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, or auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--energy-model", default="cmos45", help="energy model of the per-stage estimate")
    p.add_argument("--report-samples", type=int, default=512, help="samples profiled for energy per stage")
    p.add_argument("--out", help="run folder (default: a new runs/compress-<date>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (its settings are reloaded)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=handler)
    return p


_STORED = ("checkpoint", "model", "schedule", "epochs", "lr", "batch_size", "weight_decay", "threshold_rescale",
           "no_learn_leak", "no_learn_threshold", "select", "input_scale", "backend", "seed", "energy_model",
           "report_samples", "dataset", "data", "labels", "test_data", "test_labels", "root", "download",
           "sensor_size", "downsample", "val_fraction", "cache_dir")


def _static_data(args: argparse.Namespace, base_spec) -> tuple[Any, Any, Any, dict]:
    """Train / validation / test static images from the data arguments."""
    from snn.cli import _data_spec
    from snn.datasets import train_val_split
    from snn.latency.data import static_images
    from snn.train import DataSpec, build_datasets
    spec = _data_spec(args, base_spec) if (args.data or args.dataset) else (base_spec or DataSpec())
    for attr in ("downsample", "sensor_size", "cache_dir"):
        if getattr(args, attr, None) is not None:
            setattr(spec, attr, getattr(args, attr))
    spec.T, spec.time_window, spec.progress, spec.seed = 1, None, not args.no_progress, args.seed
    spec.val_fraction = args.val_fraction
    train_frames, test_frames, info = build_datasets(spec)
    scale = args.input_scale
    train_all, test = static_images(train_frames, scale), static_images(test_frames, scale)
    train, val = train_val_split(train_all, args.val_fraction, seed=args.seed,
                                 stratify=[int(train_frames[i][1]) for i in range(len(train_frames))])
    info = dict(info, spec=dict(vars(spec)), input_scale=scale, n_train=len(train), n_val=len(val), n_test=len(test))
    return train, val, test, info


def _model(args: argparse.Namespace, info: dict) -> tuple[nn.Module, dict]:
    from snn.models import build_model
    from snn.train.loop import model_kwargs_for
    if args.checkpoint:
        from snn.train import load_model
        model, ck = load_model(args.checkpoint, device="cpu", backend=args.backend)
        return model, {"preset": ck["config"]["model"], "model_kwargs": {**ck["model_kwargs"], "backend": args.backend}}
    kwargs = model_kwargs_for(args.model, info, args.backend, {})
    torch.manual_seed(args.seed)                    # the initial weights too follow --seed
    return build_model(args.model, **kwargs), {"preset": args.model, "model_kwargs": kwargs}


def _values(v: Any) -> str:
    return ",".join(str(x) for x in v) if isinstance(v, (list, tuple)) else str(v)


def _check_args(args: argparse.Namespace) -> None:
    """The option values of ``snn compress`` that need no data (all but ``--device``), checked
    before the run folder is written: each a one-line ``ValueError`` naming the option
    (FileNotFoundError for a missing ``--energy-model`` JSON file)."""
    from snn.cli import check_fraction
    sched = list(args.schedule)
    if not sched or any(T < 1 for T in sched) or any(a <= b for a, b in zip(sched, sched[1:])):
        raise ValueError(f"--schedule must be strictly decreasing timesteps ≥ 1 (e.g. 5,4,3,2,1), "
                         f"got {_values(sched)}")
    for name, vals in (("--epochs", args.epochs), ("--lr", args.lr)):
        if len(vals) not in (1, len(sched)):
            raise ValueError(f"{name} needs one value or one per stage of --schedule ({len(sched)}), "
                             f"got {len(vals)}: {_values(vals)}")
    if any(e < 1 for e in args.epochs):
        raise ValueError(f"--epochs must be ≥ 1, got {_values(args.epochs)}")
    if any(not (0 < lr < math.inf) for lr in args.lr):
        raise ValueError(f"--lr must be positive, got {_values(args.lr)}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be ≥ 1, got {args.batch_size}")
    if not 0 <= args.weight_decay < math.inf:
        raise ValueError(f"--weight-decay must be ≥ 0, got {args.weight_decay}")
    if isinstance(args.threshold_rescale, (int, float)) and not 0 < args.threshold_rescale < math.inf:
        raise ValueError(f"--threshold-rescale must be none, rate or a positive factor, got {args.threshold_rescale}")
    if args.input_scale is not None and not 0 < args.input_scale < math.inf:
        raise ValueError(f"--input-scale must be positive, got {args.input_scale}")
    if args.report_samples < 1:
        raise ValueError(f"--report-samples must be ≥ 1, got {args.report_samples}")
    if args.downsample is not None and not 0 < args.downsample <= 1:
        raise ValueError(f"--downsample must be in (0, 1], got {args.downsample}")
    check_fraction(args.val_fraction)
    try:
        from snn.energy import get_energy_model
    except ImportError:  # pragma: no cover - energy accounting not installed
        pass
    else:
        try:
            get_energy_model(args.energy_model)
        except ValueError as e:
            raise ValueError(f"--energy-model: {e}") from None


def _resumable(out: Path, schedule: list[int]) -> bool:
    """Whether ``out`` holds anything a run could resume from: a finished stage or a finished epoch."""
    from snn.latency.runs import PROGRESS, stage_file
    return (out / PROGRESS).exists() or any((out / stage_file(i, T)).exists() for i, T in enumerate(schedule))


def handler(args: argparse.Namespace) -> int:
    import json
    import time

    from snn.cli import _device
    from snn.train import TrainConfig, load_train_checkpoint
    from snn.train.checkpoint import write_json
    device = _device(args.device)                   # not a stored setting: a resumed run may change it
    if args.out is None:
        if args.resume:
            raise ValueError("--resume needs --out, the run folder to continue")
        args.out = str(Path("runs") / f"compress-{time.strftime('%Y%m%d-%H%M%S')}")
    out = Path(args.out)
    stored_settings = args.resume and (out / CLI_FILE).exists()
    if stored_settings:
        stored = json.loads((out / CLI_FILE).read_text())
        for k in _STORED:
            if k in stored:
                setattr(args, k, tuple(stored[k]) if k == "sensor_size" and stored[k] else stored[k])
    try:
        _check_args(args)
    except ValueError as e:
        if stored_settings and not _resumable(out, list(args.schedule)):
            raise ValueError(f"{e} (a setting stored in {out / CLI_FILE} by a run that never finished an epoch: "
                             f"remove {out} and start the run again)") from None
        raise
    if not args.resume and (out / CLI_FILE).exists():
        raise FileExistsError(f"{out} already holds a compress run: pass --resume or choose another --out")
    base_spec = None
    if args.checkpoint:
        cfg = TrainConfig.from_dict(load_train_checkpoint(args.checkpoint)["config"])  # names what else it is
        base_spec = cfg.data
        if args.input_scale is None:
            args.input_scale = 1.0 / cfg.data.T
    if args.input_scale is None:
        args.input_scale = 1.0
    train, val, test, info = _static_data(args, base_spec)
    model, build = _model(args, info)
    new_folder, wrote = not out.exists(), False
    if not args.resume or not (out / CLI_FILE).exists():
        write_json({k: getattr(args, k) for k in _STORED}, out / CLI_FILE)
        wrote = True
    try:
        res = _compress(args, out, model, train, val, test, info, build, device)
    except BaseException:
        if wrote and not _resumable(out, list(args.schedule)):
            # failed before its first epoch ended: nothing to resume, so nothing is left behind and
            # the same (corrected) command can be run again
            (out / CLI_FILE).unlink(missing_ok=True)
            if new_folder:
                try:
                    out.rmdir()
                except OSError:
                    pass
        raise
    print(res.table())
    first, last = res.stages[0], res.stages[-1]
    print(f"T={first['T']} → T={last['T']}: test accuracy {100 * first['test_acc']:.2f}% → "
          f"{100 * last['test_acc']:.2f}%; results in {out} (compress.json, compress.png, stage checkpoints)")
    return 0


def _compress(args: argparse.Namespace, out: Path, model: nn.Module, train, val, test, info: dict, build: dict,
              device: torch.device):
    from snn.latency.iir import compress_timesteps
    one = lambda v: v[0] if len(v) == 1 else v  # noqa: E731
    return compress_timesteps(
        model, train, val, args.schedule, epochs=one(args.epochs), lr=one(args.lr), batch_size=args.batch_size,
        weight_decay=args.weight_decay, learn_threshold=not args.no_learn_threshold,
        learn_leak=not args.no_learn_leak, threshold_rescale=args.threshold_rescale, test_data=test,
        select=args.select, out=out, resume=args.resume, device=device, seed=args.seed,
        energy_model=args.energy_model, report_samples=args.report_samples, progress=not args.no_progress,
        checkpoint_extra={**build, "data": {k: v for k, v in info.items() if k != "spec"}})


def load_stage_model(path: str | os.PathLike, device: str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the network of a ``snn compress`` stage checkpoint (preset + IIR neurons + weights).

    Returns:
        ``(model, checkpoint)``; the model is in eval mode with ``T`` set to the stage's.

    Raises:
        FileNotFoundError, snn.train.CheckpointError: as :func:`snn.train.load_checkpoint`.
        ValueError: the checkpoint was written by the Python API without model-building info.
    """
    from snn.latency.iir import set_timesteps
    from snn.latency.prepare import prepare_for_iir
    from snn.models import build_model
    from snn.train import load_checkpoint
    ck = load_checkpoint(path)
    extra, cfg = ck.get("extra") or {}, ck["config"]
    if "preset" not in extra:
        raise ValueError(f"{path}: no model-building info (written by compress_timesteps without "
                         "checkpoint_extra); load its 'model' state dict into your own network")
    model = build_model(extra["preset"], **extra["model_kwargs"])
    if cfg.get("prepare", True):
        prepare_for_iir(model, learn_threshold=cfg["learn_threshold"], learn_leak=cfg["learn_leak"],
                        if_beta=cfg["if_beta"])
    model.load_state_dict(ck["model"])
    set_timesteps(model, int(ck["T"]))
    return model.to(device).eval(), ck


# -- snn evaluate --dynamic-confidence ---------------------------------------------------------
def add_evaluate_options(parser: argparse.ArgumentParser) -> None:
    """Add the ``--dynamic-confidence`` options to the ``snn evaluate`` parser."""
    g = parser.add_argument_group("Dynamic Confidence (Li, Jones & Furber, ICCV 2023)")
    g.add_argument("--dynamic-confidence", action="store_true",
                   help="early-stopping inference: a sample stops when max softmax of its accumulated output "
                        "exceeds a threshold; reports accuracy, mean timesteps and wall time vs all T")
    g.add_argument("--dc-threshold", type=float, metavar="θ",
                   help="confidence threshold in [0, 1] (default: calibrated on a held-out part of the data)")
    g.add_argument("--dc-max-drop", type=float, default=0.005, metavar="F",
                   help="calibration: allowed accuracy drop versus all T, as a fraction (default 0.005)")
    g.add_argument("--dc-criterion", choices=("agreement", "accuracy"), default="agreement",
                   help="calibration: at most --dc-max-drop of the samples decide differently than after all T "
                        "(agreement, default) or accuracy ≥ full − --dc-max-drop")
    g.add_argument("--dc-calibration-fraction", type=float, default=0.5, metavar="F",
                   help="without --dc-threshold: stratified fraction of the data used to calibrate; the rest is "
                        "reported (default 0.5)")
    g.add_argument("--dc-scale", type=float, metavar="S", help="fixed divisor of the accumulated output (default: T)")
    g.add_argument("--dc-chunk", type=int, default=1, metavar="K", help="timesteps between batch reductions")
    g.add_argument("--dc-repeats", type=int, default=3, metavar="N", help="timed rounds per batch (wall time)")
    g.add_argument("--dc-out", metavar="DIR", help="write dc.json, dc_calibration.json, dc_pareto.png, dc_latency.png")


def run_dynamic_confidence(args: argparse.Namespace, model: nn.Module, test_data: Any) -> dict[str, Any]:
    """Dynamic Confidence on ``test_data`` (``([T, ...], label)`` samples) for ``snn evaluate``.

    Without ``--dc-threshold``, θ is calibrated (:func:`snn.latency.calibrate_threshold`) on a
    stratified ``--dc-calibration-fraction`` of the data and the rest is reported, so the
    figures are not tuned on the samples they describe. Prints a summary and returns a dict
    (accuracy full vs DC, mean timesteps, wall time per sample both ways, θ, oracle).

    Raises:
        ValueError: bad ``--dc-*`` values; data without a time axis.
    """
    from snn.datasets import train_val_split
    from snn.latency.calibrate import calibrate_threshold
    from snn.latency.dynamic import DynamicConfidence
    from snn.latency.timing import compare_wall_time
    from snn.train.checkpoint import write_json
    bs = getattr(args, "batch_size", 64) or 64
    x0 = test_data[0][0]
    if getattr(x0, "dim", lambda: 0)() < 1:
        raise ValueError("--dynamic-confidence needs time-first samples [T, ...]")
    T = int(x0.shape[0])
    cal, report = None, test_data
    threshold = args.dc_threshold
    if threshold is None:
        f = args.dc_calibration_fraction
        if not 0 < f < 1:
            raise ValueError(f"--dc-calibration-fraction must be in (0, 1), got {f}")
        report, cal_part = train_val_split(test_data, f, seed=0, stratify=True)
        cal = calibrate_threshold(model, cal_part, T, max_accuracy_drop=args.dc_max_drop, scale=args.dc_scale,
                                  batch_size=bs, criterion=args.dc_criterion)
        threshold = cal.threshold
    dc = DynamicConfidence(model, threshold, T, scale=args.dc_scale, chunk=args.dc_chunk)
    res = dc.evaluate(report, batch_size=bs)
    timing = compare_wall_time(dc, report, batch_size=bs, repeats=args.dc_repeats)
    out = {"threshold": threshold, "T": T, "scale": dc.scale, "readout": dc.readout,
           "calibrated_on": None if cal is None else cal.trace.n, **res.to_dict(), "timing": timing,
           "full_accuracy": timing["full_accuracy"],
           "oracle": None if cal is None else cal.oracle}
    print(f"dynamic confidence θ={threshold:.4g}{'' if cal is None else f' (calibrated on {cal.trace.n} samples)'}: "
          f"accuracy {100 * res.accuracy:.2f}% (all T={T}: {100 * timing['full_accuracy']:.2f}%) on {res.n} samples, "
          f"mean {res.mean_latency:.2f} of {T} timesteps ({-100 * (1 - res.mean_latency / T):+.1f}%), wall time "
          f"{timing['dc_ms_per_sample']:.3g} vs {timing['full_ms_per_sample']:.3g} ms/sample "
          f"({-100 * timing['wall_time_reduction']:+.1f}%)")
    if args.dc_out:
        d = Path(args.dc_out)
        if cal is not None:
            cal.save(d)
        write_json(out, d / "dc.json")
    return out

