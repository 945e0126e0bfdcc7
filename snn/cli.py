"""The ``snn`` command: ``snn train``, ``snn evaluate``."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["main", "build_parser", "SUBCOMMAND_MODULES"]

DEFAULT_EPOCHS = 8  # of a new `snn train` run (a resumed one keeps its own)
# Modules that add subcommands: each defines ``add_parser(subparsers)``, which creates its
# parser and sets ``func=handler`` (``handler(args) -> int``) with ``set_defaults``.
SUBCOMMAND_MODULES: tuple[str, ...] = ("snn.energy.cli", "snn.latency.cli", "snn.conversion.cli")


def _sensor_size(text: str) -> tuple[int, int, int]:
    try:
        w, h, p = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected W,H,P (e.g. 34,34,2), got {text!r}") from None
    return (w, h, p)


def _add_data_args(p: argparse.ArgumentParser, default_dataset: Optional[str]) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default=default_dataset,
                   help="dataset name (digits-events, nmnist, shd, ssc, dvsgesture, cifar10dvs, pokerdvs, "
                        "ncaltech101, ...); default: %(default)s")
    g.add_argument("--data", metavar="FOLDER", help="your own recordings: one sub-folder per class, or --labels")
    g.add_argument("--labels", metavar="FILE", help="label list for --data: lines '<file stem or path> <label>'")
    g.add_argument("--test-data", metavar="FOLDER", help="test recordings (default: hold out --val-fraction)")
    g.add_argument("--test-labels", metavar="FILE", help="label list for --test-data")
    g.add_argument("--root", metavar="DIR", help="where tonic datasets live / are downloaded")
    g.add_argument("--download", action="store_true", help="let tonic download the dataset")
    g.add_argument("--sensor-size", type=_sensor_size, metavar="W,H,P",
                   help="sensor size of the events (default: inferred from --data's files, or the dataset's own; "
                        "ncaltech101 needs it)")
    g.add_argument("--T", type=int, help="timesteps = frames per sample")
    g.add_argument("--time-window", type=float, metavar="US", help="frame length in µs (default: T equal bins)")
    g.add_argument("--downsample", type=float, metavar="F", help="spatial downsampling factor in (0, 1]")
    g.add_argument("--val-fraction", type=float, default=0.2,
                   help="fraction held out for testing without --test-data, and for datasets without an official "
                        "test split (cifar10dvs, ncaltech101, asldvs); default: %(default)s")
    g.add_argument("--cache-dir", metavar="DIR", help="frame cache folder (default $SNN_CACHE or ~/.cache/snn)")


def build_parser() -> argparse.ArgumentParser:
    from snn.models import PRESETS
    parser = argparse.ArgumentParser(prog="snn", description="Spiking neural networks on PyTorch.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (backend choices, ...)")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model preset on event data",
                       description="Train an SNN preset. Without data arguments it trains on the embedded "
                                   "digits-events dataset (offline).")
    _add_data_args(t, "digits-events")
    t.add_argument("--model", default="conv", help=f"preset: {', '.join(sorted(PRESETS))} (default: %(default)s)")
    t.add_argument("--epochs", type=int, default=None,
                   help=f"training epochs (default: {DEFAULT_EPOCHS}; with --resume: the run's own count)")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (cosine-annealed)")
    t.add_argument("--backend", default="auto", help="neuron backend: auto, torch, numba, cupy")
    t.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, or auto")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", help="new run folder for checkpoint, metrics.json and PNGs; must not exist "
                                 "(default: a new runs/<data>-<date>-<time>, with -2, -3, ... if taken)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out (its checkpoint.pt) from its last epoch, writing there")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="data-parallel processes on this machine, started with torchrun (gloo on CPU, NCCL on "
                        "GPU); --batch-size is per process")

    e = sub.add_parser("evaluate", help="evaluate a checkpoint",
                       description="Evaluate a checkpoint on its own test split (default), on every recording "
                                   "of --test-data (or --data), or on the test split of --dataset.")
    e.add_argument("checkpoint")
    _add_data_args(e, None)
    e.add_argument("--backend", default=None)
    e.add_argument("--device", default="auto")
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--out", metavar="JSON", help="write the result here as JSON")
    from snn.latency.cli import add_evaluate_options
    add_evaluate_options(e)
    t.set_defaults(func=_train)
    e.set_defaults(func=_evaluate)
    import importlib
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def _absolute(path: Optional[str]) -> Optional[str]:
    """``path`` made absolute (``~`` expanded): a run's stored paths then work from any folder."""
    return None if path is None else os.path.abspath(os.path.expanduser(path))


def _labels_path(path: Optional[str]) -> Optional[str]:
    """A label-list path made absolute if it names a file in the working directory; otherwise
    kept as given, since :class:`snn.datasets.EventFolder` also looks for it in the data folder."""
    if path is None or not os.path.isfile(os.path.expanduser(path)):
        return path
    return _absolute(path)


def _data_spec(args: argparse.Namespace, base=None):
    """The :class:`snn.train.DataSpec` of the data arguments, on top of ``base`` (a run's own)."""
    from snn.train import DataSpec
    spec = base if base is not None else DataSpec()
    if args.data is not None:
        spec.data, spec.labels = _absolute(args.data), _labels_path(args.labels)
        spec.test_data, spec.test_labels = _absolute(args.test_data), _labels_path(args.test_labels)
    elif args.dataset is not None:
        spec.dataset, spec.data, spec.labels, spec.test_data, spec.test_labels = args.dataset, None, None, None, None
        spec.sensor_size = spec.classes = None     # another dataset: its own sensor size and classes
    for attr in ("root", "cache_dir"):
        if getattr(args, attr) is not None:
            setattr(spec, attr, _absolute(getattr(args, attr)))
    for attr in ("sensor_size", "T", "time_window", "downsample"):
        if getattr(args, attr) is not None:
            setattr(spec, attr, getattr(args, attr))
    spec.download = spec.download or args.download
    if base is None:                                # a run's own hold-out stays the one it was tested on
        spec.val_fraction = args.val_fraction
    return spec


def _default_out(args: argparse.Namespace) -> str:
    import time
    data = Path(args.data).name if args.data else args.dataset
    return str(Path("runs") / f"{data}-{time.strftime('%Y%m%d-%H%M%S')}")


def _launch_torchrun(args: argparse.Namespace) -> int:
    """Re-run this command under ``torchrun --standalone --nproc-per-node N`` (one process per rank)."""
    import subprocess
    argv = list(args.argv)
    i = next(k for k, a in enumerate(argv) if a == "--nproc" or a.startswith("--nproc="))
    del argv[i: i + (1 if "=" in argv[i] else 2)]
    if "--out" not in argv:
        argv += ["--out", args.out]                 # one run folder for every rank
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}",
           "-m", "snn", *argv]
    return subprocess.call(cmd)


def _device(name: str, what: str = "--device"):
    """:func:`snn.train.check_device` with its ``ValueError`` prefixed by ``what``."""
    from snn.train.loop import check_device
    try:
        return check_device(name)
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None


def _check_train_args(args: argparse.Namespace) -> None:
    """Argument errors of ``snn train`` that need no data (before a run folder is created)."""
    if args.nproc < 1:
        raise ValueError(f"--nproc must be ≥ 1, got {args.nproc}")
    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs must be ≥ 1, got {args.epochs}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be ≥ 1, got {args.batch_size}")
    if args.T is not None and args.T < 1:
        raise ValueError(f"--T must be ≥ 1, got {args.T}")
    check_fraction(args.val_fraction)
    _device(args.device)


def check_fraction(value: float, what: str = "--val-fraction") -> None:
    """``value`` must lie in (0, 1) (a hold-out fraction), whether or not it will be used."""
    if not 0 < value < 1:
        raise ValueError(f"{what} must be in (0, 1), got {value}")


def _resumed_config(args: argparse.Namespace):
    """The stored config of the run in ``--out``, continued there (not in the folder it was
    started in: a copied run folder is a branch of the run)."""
    from snn.train import TrainConfig, load_train_checkpoint
    from snn.train.loop import CHECKPOINT
    out = Path(args.out)
    if not (out / CHECKPOINT).is_file():
        if not out.exists():
            why = " (the folder does not exist)"
        elif out.is_dir() and not any(out.iterdir()):
            why = (" (the run stopped before its first epoch ended: remove the empty folder and start the run "
                   "again without --resume)")
        else:
            why = ""
        raise FileNotFoundError(f"nothing to resume in {out}: no {CHECKPOINT}{why}")
    ck = load_train_checkpoint(out / CHECKPOINT)
    cfg = TrainConfig.from_dict(ck["config"])
    cfg.out, cfg.resume, cfg.progress = str(out), True, not args.no_progress
    if args.epochs is not None:                     # extending (or shortening) the run on purpose
        done = int(ck.get("epoch", 0))
        if args.epochs < done:
            raise ValueError(f"--epochs {args.epochs} is below the {done} epochs the run in {out} has already "
                             f"trained: pass --epochs {done} or more")
        cfg.epochs = args.epochs
    _device(cfg.device, "the run's device")
    return cfg


def _train(args: argparse.Namespace) -> int:
    from snn.train import TrainConfig, train
    from snn.train.distributed import launched_by_torchrun
    from snn.train.runs import create_run_folder, remove_if_empty
    _check_train_args(args)
    under_torchrun = launched_by_torchrun()
    created: Optional[Path] = None
    if args.resume:
        if args.out is None:
            raise ValueError("--resume needs --out, the run folder to continue")
        cfg = _resumed_config(args)
    else:
        if args.out is None:
            args.out = _default_out(args)
            unique = True
        else:
            unique = False
        if not under_torchrun:                      # each rank of a torchrun job shares the launcher's folder
            created = create_run_folder(args.out, unique=unique)
            args.out = str(created)
        cfg = TrainConfig(data=_data_spec(args), model=args.model,
                          epochs=DEFAULT_EPOCHS if args.epochs is None else args.epochs,
                          batch_size=args.batch_size, lr=args.lr, backend=args.backend, device=args.device,
                          seed=args.seed, out=args.out, resume=False, progress=not args.no_progress)
    try:
        if args.nproc > 1 and not under_torchrun:
            return _launch_torchrun(args)
        m = train(cfg)
    finally:
        if created is not None:
            remove_if_empty(created)                # a run that failed before its first epoch: nothing to keep
    f = m["final"]
    if f is None:                                   # a rank other than 0 under torchrun
        return 0
    print(f"done: test accuracy {100 * f['test_acc']:.2f}% (best {100 * m['best_test_acc']:.2f}%), "
          f"firing rate {f['firing_rate']:.3f}, backend {','.join(m['backends_used'])}; results in {cfg.out}")
    return 0


def load_checkpoint_and_data(args: argparse.Namespace):
    """``(model, checkpoint, test set, data info)`` for commands that take a ``snn train``
    checkpoint: the run's own test split; or every recording of ``--test-data`` (else of
    ``--data``), on the training run's sensor size unless ``--sensor-size`` is given; or the
    test split of ``--dataset``. Binned as in training unless ``--T``/``--time-window``/...
    override it. Folders are labelled with the training run's class numbering (its
    ``info["classes"]``): a folder lacking a class is fine, one with a class the run does not
    know is an error naming it.

    Raises:
        FileNotFoundError: no checkpoint file, or missing data.
        snn.train.CheckpointError: the file is not a ``snn train`` checkpoint.
        ValueError: a class or label unknown to the run; bad data arguments.
    """
    from snn.train import TrainConfig, build_datasets, load_model
    model, ck = load_model(args.checkpoint, device="cpu", backend=args.backend)
    cfg = TrainConfig.from_dict(ck["config"])
    spec = _data_spec(args, cfg.data) if (args.data or args.dataset) else cfg.data
    for attr in ("T", "time_window", "downsample", "sensor_size"):
        if getattr(args, attr, None) is not None:
            setattr(spec, attr, getattr(args, attr))
    if getattr(args, "cache_dir", None) is not None:
        spec.cache_dir = _absolute(args.cache_dir)
    run_info = ck.get("info") or {}
    folder = args.test_data or args.data
    if folder is not None:                          # every recording of that folder, no hold-out
        labels = args.test_labels if args.test_data else args.labels
        spec.data, spec.labels = _absolute(folder), _labels_path(labels)
        spec.test_data, spec.test_labels = spec.data, spec.labels
        trained_on = run_info.get("sensor_size")
        if spec.sensor_size is None and trained_on is not None:
            spec.sensor_size = tuple(trained_on)    # frames shaped as in training
    if spec.data is not None and run_info.get("classes"):
        spec.classes = list(run_info["classes"])    # the run's class numbering, not the folder's own
    _, test, info = build_datasets(spec)
    _check_labels(test, int(ck["model_kwargs"].get("num_classes", run_info.get("num_classes", 0)) or 0), spec)
    return model, ck, test, info


def _check_labels(test, num_classes: int, spec) -> None:
    """A label the model has no output for would crash cross-entropy: name it instead."""
    if num_classes <= 0 or len(test) == 0:
        return
    from torch.utils.data import Subset
    base, index = (test.dataset, test.indices) if isinstance(test, Subset) else (test, slice(None))
    labels = getattr(base, "labels", None)
    if labels is None:
        return
    top = int(max(labels[index]))
    if top >= num_classes:
        where = spec.test_data or spec.data or spec.dataset
        raise ValueError(f"{where}: label {top} is unknown to the model, which has {num_classes} classes "
                         f"(0 to {num_classes - 1})")


def _evaluate(args: argparse.Namespace) -> int:
    from snn.train import evaluate
    dev = _device(args.device)
    model, _, test, info = load_checkpoint_and_data(args)
    res = evaluate(model.to(dev), test, dev, batch_size=args.batch_size)
    res.update(checkpoint=str(args.checkpoint), data=info)
    if args.dynamic_confidence:
        from snn.latency.cli import run_dynamic_confidence
        res["dynamic_confidence"] = run_dynamic_confidence(args, model, test)
    print(f"accuracy {100 * res['acc']:.2f}% on {res['n']} samples, loss {res['loss']:.4f}, "
          f"firing rate {res['firing_rate']:.3f}")
    if args.out:
        from snn.train.checkpoint import write_json
        write_json(res, args.out)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``snn`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        if isinstance(getattr(args, "device", None), str):
            _device(args.device)                    # every subcommand: a one-line error, before any work
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as e:
        print(f"snn {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
