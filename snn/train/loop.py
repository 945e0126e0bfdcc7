"""The training / evaluation loop behind ``snn train`` and ``snn evaluate``."""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from snn.datasets import collate_time_first
from snn.models import build_model
from snn.state import reset
from snn.train.checkpoint import load_checkpoint, load_train_checkpoint, save_checkpoint, write_json
from snn.train.data import DataSpec, build_datasets
from snn.train.distributed import (any_process, barrier, device_for, init_distributed, sum_over_processes,
                                   wrap_model)
from snn.train.monitor import SpikeMonitor
from snn.train.plots import plot_spike_raster, plot_training_curves

log = logging.getLogger("snn")

__all__ = ["TrainConfig", "train", "train_epoch", "evaluate", "scores", "model_kwargs_for", "load_model",
           "check_device"]

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainConfig:
    """Everything a training run needs; saved in the checkpoint and ``metrics.json``.

    ``data`` says where events come from (:class:`snn.train.data.DataSpec`); ``model`` is a
    preset name of :data:`snn.models.PRESETS`, ``model_args`` overrides its defaults.
    ``lr`` is Adam's initial learning rate (cosine-annealed to 0 over ``epochs``).

    Attributes:
        epochs, batch_size: training length and samples per batch (per process), both ≥ 1.
        lr, weight_decay: Adam's settings.
        backend: neuron backend passed to the preset (``"auto"``, ``"torch"``, ...).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (:func:`check_device`).
        seed: seeds the weights, the data order and the held-out split.
        out: run folder (checkpoint, ``metrics.json``, figures).
        resume: continue from ``out``'s checkpoint.
        progress: show progress bars.
    """

    data: DataSpec = field(default_factory=DataSpec)
    model: str = "conv"
    model_args: dict = field(default_factory=dict)
    epochs: int = 8
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.0
    backend: str = "auto"
    device: str = "auto"
    seed: int = 0
    out: str = "runs/train"
    resume: bool = False
    progress: bool = True

    def to_dict(self) -> dict:
        """The config as a JSON-ready dict (``data`` nested)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Inverse of :meth:`to_dict` (``TypeError`` for unknown keys)."""
        d = dict(d)
        data = DataSpec(**d.pop("data", {}))
        if data.sensor_size is not None:
            data.sensor_size = tuple(data.sensor_size)
        return cls(data=data, **d)


def scores(output: Tensor) -> Tensor:
    """Class scores from a readout membrane ``[T, B, C]``: its mean over time → ``[B, C]`` (same dtype)."""
    return output.mean(0)


def check_device(name: str) -> torch.device:
    """The ``torch.device`` for ``name`` ("auto": CUDA if available, else the CPU).

    Raises:
        ValueError: ``name`` is not a device string, or names a CUDA device that this machine
            (or this torch build) does not have; the message says what is available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {name!r} is not a device: expected cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ValueError(f"device {name!r} is not available: {why} (torch {torch.__version__}); "
                             "use cpu or auto")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device {name!r} is not available: this machine has {count} CUDA device"
                             f"{'s' if count != 1 else ''} (cuda:0 to cuda:{count - 1})")
    return dev


def model_kwargs_for(preset: str, info: dict, backend: str, extra: dict) -> dict:
    """Constructor arguments that fit a preset to the data (input size, classes, backend).

    Args:
        preset: preset name (:data:`snn.models.PRESETS`).
        info: the ``info`` dict of :func:`snn.train.build_datasets` (``frame_shape``, ``num_classes``).
        backend: neuron backend.
        extra: user overrides, applied last.

    Raises:
        ValueError: a ``conv*`` preset with frames that are not square ``[P, H, W]``.
    """
    shape = info["frame_shape"][1:]
    kw: dict[str, Any] = {"num_classes": info["num_classes"], "backend": backend}
    if preset.startswith("conv"):
        if len(shape) != 3 or shape[1] != shape[2]:
            raise ValueError(f"model {preset!r} needs square 2-D frames [P, H, W]; the data gives {shape}")
        kw.update(in_channels=shape[0], input_size=shape[1])
    else:
        kw["in_features"] = math.prod(shape)
    return {**kw, **extra}


def load_model(path: str | Path, device: str = "cpu", backend: Optional[str] = None) -> tuple[nn.Module, dict]:
    """Rebuild the model of a ``snn train`` checkpoint (``weights_only`` load).

    Returns:
        ``(model, checkpoint)``.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: not a ``snn train`` checkpoint (see :func:`load_train_checkpoint`).
        ValueError: ``device`` is not available (see :func:`check_device`).
    """
    ck = load_train_checkpoint(path)
    kwargs = dict(ck["model_kwargs"])
    if backend is not None:
        kwargs["backend"] = backend
    model = build_model(ck["config"]["model"], **kwargs)
    model.load_state_dict(ck["model"])
    return model.to(check_device(device)), ck


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset | DataLoader, device: str | torch.device = "cpu",
             batch_size: int = 64, monitor: Optional[SpikeMonitor] = None) -> dict[str, float]:
    """Accuracy, mean cross-entropy and firing rate of ``model`` on ``data``.

    Args:
        model: ``[T, B, ...] → [T, B, C]`` (scored by :func:`scores`); put in eval mode.
        data: a Dataset of ``(float32 [T, ...], label)`` (batched with
            :func:`snn.datasets.collate_time_first`) or a DataLoader of ``([T, B, ...], [B])``.
        device: where ``model`` already is; batches are moved there.
        batch_size: for a Dataset.
        monitor: the :class:`SpikeMonitor` to record rates with (default: a new one).

    Returns:
        ``{"loss", "acc", "firing_rate", "layer_rates": {...}, "n"}``.

    Raises:
        ValueError: ``data`` is empty.
    """
    loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size, collate_fn=collate_time_first)
    model.eval()
    dev = torch.device(device)
    mon = monitor or SpikeMonitor(model)
    loss = correct = n = 0
    with mon:
        for x, y in loader:
            x, y = x.to(dev), y.to(dev)
            s = scores(model(x))
            reset(model)
            loss += F.cross_entropy(s, y, reduction="sum").item()
            correct += (s.argmax(1) == y).sum().item()
            n += len(y)
    if n == 0:
        raise ValueError("evaluate: the dataset is empty")
    return {"loss": loss / n, "acc": correct / n, "firing_rate": mon.mean_rate(), "layer_rates": mon.rates(), "n": n}


def train_epoch(model: nn.Module, loader: Iterable, opt: torch.optim.Optimizer, device: torch.device, desc: str = "",
                progress: bool = False, forward: Optional[Callable[[Tensor], Tensor]] = None) -> tuple[float, float]:
    """One epoch of BPTT with cross-entropy on ``forward(x) → scores [B, classes]``
    (default ``scores(model(x))``); the network state is reset around every batch, and
    ``model.after_optimizer_step()`` runs after every step if the model defines it.

    Args:
        model: the network (possibly DDP-wrapped), on ``device``.
        loader: batches ``(x [T, B, ...], y [B])``.
        opt: the optimizer, stepped once per batch.
        device: where batches are moved.
        desc, progress: progress-bar label and whether to show it.
        forward: ``x → scores [B, classes]`` (default ``scores(model(x))``).

    Returns ``(mean loss, accuracy)`` over the samples seen; under ``torch.distributed``,
    over the samples of every process (each process trains on its own shard).

    Raises:
        FloatingPointError: a batch's loss is NaN or infinite (in any process, when
            distributed: their gradients are averaged); raised before that batch's optimizer
            step, so the model keeps the weights of the last finite step.
    """
    forward = forward or (lambda x: scores(model(x)))
    after_step = getattr(getattr(model, "module", model), "after_optimizer_step", None)   # DDP-wrapped too
    model.train()
    loss_sum, correct, n = 0.0, 0, 0
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress, mininterval=1.0)
    for batch, (x, y) in enumerate(bar, 1):
        x, y = x.to(device), y.to(device)
        reset(model)
        s = forward(x)
        loss = F.cross_entropy(s, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        loss_value = loss.item()                    # before the step: a NaN would spread into every weight
        if any_process(not math.isfinite(loss_value), device):  # averaged gradients carry any process's NaN
            where = "" if not math.isfinite(loss_value) else " in another process"
            raise FloatingPointError(f"{desc or 'training'}: the loss of batch {batch} is "
                                     f"{loss_value if where == '' else 'not finite'}{where}; the optimizer step was "
                                     "skipped and the model keeps its last "
                                     "finite weights. Look for NaN/inf inputs or a too-large learning rate "
                                     "(torch.autograd.detect_anomaly() also tests every layer on the GPU)")
        opt.step()
        if after_step is not None:
            after_step()                            # e.g. clamp delay positions to range
        reset(model)
        loss_sum += loss_value * len(y)
        correct += int((s.argmax(1) == y).sum())
        n += len(y)
        bar.set_postfix(loss=f"{loss_sum / n:.3f}", acc=f"{correct / n:.3f}")
    loss_sum, correct, n = sum_over_processes([loss_sum, correct, n], device)
    return loss_sum / max(n, 1), correct / max(n, 1)


def train(cfg: TrainConfig) -> dict:
    """Train a preset on the configured data; returns the ``metrics.json`` content.

    Writes to ``cfg.out``: ``checkpoint.pt`` (atomically, after every epoch; loads with
    ``torch.load(weights_only=True)``), ``metrics.json``, ``training.png``, ``raster.png``.
    With ``cfg.resume`` it continues from the last completed epoch; the result equals an
    uninterrupted run with the same seed (data order is seeded per epoch, RNG state saved).
    Resumed with another ``cfg.epochs`` (extended or shortened), the remaining epochs get a
    new cosine from the current rate down to 0 after the new last epoch (see
    :func:`_replan_cosine`). ``metrics.json`` records, per epoch, the learning rate that
    epoch trained with (of the first parameter group).

    Under ``torchrun`` (:mod:`snn.train.distributed`) each process trains on its shard of every
    epoch with DistributedDataParallel (``cfg.batch_size`` per process); rank 0 alone
    evaluates and writes files.

    With ``cfg.resume`` and no checkpoint in ``cfg.out`` the run starts from epoch 0 (the
    ``snn train --resume`` command refuses that case instead: nothing to resume).

    Raises:
        FileExistsError: ``cfg.out`` already holds a checkpoint and ``resume`` is off (nothing
            the user made is overwritten).
        ValueError: ``cfg.epochs`` or ``cfg.batch_size`` below 1; ``cfg.device`` not available;
            an unknown preset or frames that do not fit it (:func:`model_kwargs_for`); data
            errors as :func:`snn.train.build_datasets` (which may also raise ``FileNotFoundError``).
    """
    if not (isinstance(cfg.epochs, int) and cfg.epochs >= 1):
        raise ValueError(f"epochs must be ≥ 1, got {cfg.epochs!r}")
    if not (isinstance(cfg.batch_size, int) and cfg.batch_size >= 1):
        raise ValueError(f"batch_size must be ≥ 1, got {cfg.batch_size!r}")
    out = Path(cfg.out)
    ck_path = out / CHECKPOINT
    if ck_path.exists() and not cfg.resume:
        raise FileExistsError(f"{ck_path} exists: pass --resume to continue that run or choose another --out")
    requested = check_device(cfg.device)
    dinfo = init_distributed(requested)
    device = device_for(requested, dinfo)
    main = dinfo.is_main
    torch.manual_seed(cfg.seed)
    cfg.data.seed = cfg.seed
    cfg.data.progress = cfg.progress and main
    if not main:
        barrier(dinfo)                              # rank 0 builds the frame cache first
    train_ds, test_ds, info = build_datasets(cfg.data)
    if main:
        barrier(dinfo)
    kwargs = model_kwargs_for(cfg.model, info, cfg.backend, cfg.model_args)
    model = build_model(cfg.model, **kwargs).to(device)
    # models may define training hooks (snn.delays.DelayTrainingMixin: position learning rate,
    # σ schedule, clamping, rounding at the end); plain models use none of them
    params = model.param_groups(cfg.lr, cfg.weight_decay) if hasattr(model, "param_groups") else model.parameters()
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
    history: list[dict] = []
    start = 0
    if cfg.resume and ck_path.exists():
        ck = load_checkpoint(ck_path)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        torch.set_rng_state(ck["rng"])
        history, start = list(ck["history"]), int(ck["epoch"])
        log.info("resuming %s after epoch %d", ck_path, start)
        sched = _replan_cosine(opt, sched, start, cfg.epochs)
    net = wrap_model(model, dinfo, device)
    # one sample order for any number of processes: the permutation of epoch e is drawn from
    # seed·100003 + e and dealt out rank by rank (one replica when run alone)
    sampler = DistributedSampler(train_ds, num_replicas=dinfo.world_size, rank=dinfo.rank, shuffle=True,
                                 seed=cfg.seed * 100_003)
    test_loader = DataLoader(test_ds, batch_size=max(cfg.batch_size, 64), collate_fn=collate_time_first)
    for epoch in range(start, cfg.epochs):
        sampler.set_epoch(epoch)
        loader = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate_time_first)
        if hasattr(model, "on_epoch_start"):
            model.on_epoch_start(epoch, cfg.epochs)
        lr = opt.param_groups[0]["lr"]              # the rate this epoch trains with
        t0 = time.perf_counter()
        tr_loss, tr_acc = train_epoch(net, loader, opt, device, f"epoch {epoch + 1}/{cfg.epochs}",
                                      cfg.progress and main)
        sched.step()
        train_time = time.perf_counter() - t0
        if main:
            ev = evaluate(model, test_loader, device)
            history.append({"epoch": epoch + 1, "train_loss": tr_loss, "train_acc": tr_acc, "test_loss": ev["loss"],
                            "test_acc": ev["acc"], "firing_rate": ev["firing_rate"],
                            "layer_rates": ev["layer_rates"], "epoch_time_s": train_time,
                            "lr": lr, "processes": dinfo.world_size})
            save_checkpoint({"format": 1, "config": cfg.to_dict(), "model_kwargs": kwargs, "info": info,
                             "model": model.state_dict(), "optimizer": opt.state_dict(),
                             "scheduler": sched.state_dict(), "rng": torch.get_rng_state(),
                             "epoch": epoch + 1, "history": history}, ck_path)
            write_json(_metrics(cfg, info, history, model), out / "metrics.json")
            plot_training_curves(history, out / "training.png")
            log.info("epoch %d: loss %.4f  train acc %.2f%%  test acc %.2f%%  rate %.3f  (%.1f s)", epoch + 1,
                     tr_loss, 100 * tr_acc, 100 * ev["acc"], ev["firing_rate"], train_time)
        barrier(dinfo)
    if main and hasattr(model, "on_train_end") and history and not history[-1].get("finalized"):
        model.on_train_end()                        # e.g. delays rounded to exact integers
        ev = evaluate(model, test_loader, device)
        history[-1].update(finalized=True, final_test_acc=ev["acc"], final_test_loss=ev["loss"])
        log.info("after on_train_end: test acc %.2f%%", 100 * ev["acc"])
        save_checkpoint({**load_checkpoint(ck_path), "model": model.state_dict(), "history": history}, ck_path)
        write_json(_metrics(cfg, info, history, model), out / "metrics.json")
    if main:
        _raster(model, test_ds, device, out / "raster.png")
    barrier(dinfo)
    return _metrics(cfg, info, history, model)


def _replan_cosine(opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.CosineAnnealingLR, done: int,
                  epochs: int) -> torch.optim.lr_scheduler.CosineAnnealingLR:
    """The cosine schedule of a run resumed after ``done`` epochs with a new epoch count.

    A schedule whose plan ends after epoch ``epochs`` (a run resumed with its own count) is
    returned as it is, so the run stays bit-identical to an uninterrupted one. Otherwise the
    epochs ``done + 1 .. epochs`` get a new cosine (a fresh ``CosineAnnealingLR`` with
    ``T_max = epochs - done``, in place of the old one, whose cosine would climb back up past
    its end): its first epoch trains at the rate the old plan gives the next epoch, or, where
    that plan has run out (a finished run being extended), at the rate of the plan's last
    epoch; it then anneals to ``eta_min`` (0) after epoch ``epochs``, the same way as a new
    run does after its last epoch. Per parameter group.
    """
    T, step = sched.T_max, sched.last_epoch         # steps taken since this schedule was planned
    if done >= epochs or done - step + T == epochs:
        return sched
    if step < T:                                    # the old plan's rate for the next epoch
        rates = [g["lr"] for g in opt.param_groups]
    else:                                           # the old plan's last epoch
        rates = [sched.eta_min + (base - sched.eta_min) * (1 + math.cos(math.pi * (T - 1) / T)) / 2
                 for base in sched.base_lrs]
    for g, r in zip(opt.param_groups, rates):
        g["lr"] = g["initial_lr"] = r
    log.info("epoch count changed to %d: the learning rate anneals from %.4g to %g over epochs %d-%d",
             epochs, rates[0], sched.eta_min, done + 1, epochs)
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs - done, eta_min=sched.eta_min)


def _metrics(cfg: TrainConfig, info: dict, history: list[dict], model: nn.Module) -> dict:
    backends = sorted({m.backend_used for m in model.modules() if getattr(m, "backend_used", None)})
    return {"config": cfg.to_dict(), "data": info, "backends_used": backends, "epochs": history,
            "final": history[-1] if history else None,
            "best_test_acc": max((h["test_acc"] for h in history), default=None)}


@torch.no_grad()
def _raster(model: nn.Module, data: Dataset, device: torch.device, path: Path) -> None:
    """Spike raster of the first spiking layer on the first test sample."""
    mon = SpikeMonitor(model)
    first = next(iter(mon.layers), None)
    if first is None or len(data) == 0:
        return
    mon.record = first
    x, y = data[0]
    model.eval()
    with mon:
        model(x.unsqueeze(1).to(device))
    reset(model)
    plot_spike_raster(mon.recorded[:, 0], path, title=f"layer {first!r}, test sample 0 (label {y})")
