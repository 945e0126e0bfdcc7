r"""IIR timestep compression: retrain at ever fewer timesteps, each stage initialised from the last.

Chowdhury, Rathi & Roy, "One Timestep is All You Need: Training Spiking Neural Networks with
Ultra Low Latency" (IIR-SNN, arXiv:2110.05929, 2021), Sec. 3: start from an SNN trained (or
converted and fine-tuned) at ``T = 5`` with direct input encoding; for each lower ``T`` of the
schedule retrain with surrogate gradients (BPTT), initialised with the previous stage's
weights, thresholds and leaks, down to ``T = 1``. Thresholds and leaks are learned per layer
(:func:`snn.latency.prepare_for_iir`), the reset is soft.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from snn.encoders import direct
from snn.latency.counting import UpdateCounter
from snn.latency.data import Encoder, as_dataset
from snn.latency.prepare import neuron_parameters, prepare_for_iir
from snn.latency.report import CompressionResult
from snn.latency.runs import PROGRESS, restore, stage_file
from snn.latency.rule import check_readout, readout_scores
from snn.latency.thresholds import ThresholdRescale, rescale_thresholds
from snn.state import reset
from snn.train.checkpoint import save_checkpoint
from snn.train.loop import train_epoch
from snn.train.monitor import SpikeMonitor

log = logging.getLogger("snn")

__all__ = ["compress_timesteps", "set_timesteps"]

def set_timesteps(model: nn.Module, T: int) -> None:
    """Set the fixed-``T`` input check of the :mod:`snn.models` networks inside ``model``
    (:class:`~snn.models.ConvSNN`, :class:`~snn.models.MLPSNN`,
    :class:`~snn.models.shd.DelaySNN`; where one is set) to ``T`` timesteps."""
    from snn.models import MLPSNN, ConvSNN
    from snn.models.shd import DelaySNN
    for m in model.modules():
        if isinstance(m, (ConvSNN, MLPSNN, DelaySNN)) and m.T is not None:
            m.T = T


def _per_stage(value: Any, n: int, name: str, kind: type) -> list:
    vals = list(value) if isinstance(value, (list, tuple)) else [value] * n
    if len(vals) != n:
        raise ValueError(f"{name} must be one value or one per stage ({n}), got {len(vals)}: {value!r}")
    for v in vals:
        if not isinstance(v, (int, float)) or isinstance(v, bool) or (kind is int and int(v) != v) or v < 0 \
                or (name == "lr" and not v > 0) or not math.isfinite(v):
            raise ValueError(f"{name} must be {'non-negative ints' if kind is int else 'positive numbers'}, "
                             f"got {value!r}")
    return [kind(v) for v in vals]


def _check_schedule(schedule: Sequence[int]) -> list[int]:
    s = list(schedule)
    if not s or any(not isinstance(T, int) or isinstance(T, bool) or T < 1 for T in s) \
            or any(a <= b for a, b in zip(s, s[1:])):
        raise ValueError(f"schedule must be strictly decreasing positive ints, e.g. (5, 4, 3, 2, 1); got {schedule!r}")
    return s


@torch.no_grad()
def _evaluate(model: nn.Module, data, T: int, encode: Encoder, readout: str, device: torch.device,
              batch_size: int) -> dict[str, Any]:
    model.eval()
    mon, counter = SpikeMonitor(model), UpdateCounter(model)
    correct = n = 0
    loss = 0.0
    with mon, counter:
        for x, y in DataLoader(data, batch_size=batch_size):
            x, y = x.to(device), y.to(device)
            reset(model)
            s = readout_scores(model(encode(x, T)), readout)
            reset(model)
            loss += float(F.cross_entropy(s, y, reduction="sum"))
            correct += int((s.argmax(1) == y).sum())
            n += len(y)
    if n == 0:
        raise ValueError("the evaluation data is empty")
    return {"acc": correct / n, "loss": loss / n, "firing_rate": mon.mean_rate(), "layer_rates": mon.rates(),
            "spikes_per_sample": counter.spikes / n, "neuron_updates_per_sample": counter.updates / n}


def _energy(model: nn.Module, data, T: int, encode: Encoder, device: torch.device, batch_size: int,
            energy_model: str, max_samples: int) -> dict[str, Any]:
    try:
        from snn.energy import profile
    except ImportError:  # pragma: no cover - energy accounting not installed
        return {"energy_pj": None}
    batches = ((encode(x.to(device), T), y) for x, y in DataLoader(data, batch_size=batch_size))
    try:
        s = profile(model, batches, energy_model=energy_model, max_samples=max_samples, measure_time=False).summary()
    except Exception as e:  # an estimate must not lose a finished stage
        log.warning("energy estimate failed at T=%d: %s", T, e)
        return {"energy_pj": None, "energy_error": f"{type(e).__name__}: {e}"}
    return {"energy_pj": s["energy_pj"], "sops": s["sops"], "macs": s["macs"], "energy_model": energy_model,
            "ann_energy_pj": s["ann_energy_pj"]}


def compress_timesteps(model: nn.Module, train_data: Any, val_data: Any, schedule: Sequence[int] = (5, 4, 3, 2, 1), *,
                       epochs: int | Sequence[int] = 3, lr: float | Sequence[float] = 1e-3, batch_size: int = 32,
                       weight_decay: float = 0.0, prepare: bool = True, learn_threshold: bool = True,
                       learn_leak: bool = True, if_beta: float = 0.99, threshold_rescale: ThresholdRescale = None,
                       rescale_samples: int = 256, encode: Encoder = direct, test_data: Any = None,
                       select: str = "best", out: Optional[str | os.PathLike] = None, resume: bool = False,
                       device: Optional[str | torch.device] = None, seed: int = 0, energy_model: str = "cmos45",
                       report_samples: int = 512, readout: str = "auto", progress: bool = False,
                       on_stage_start: Optional[Callable[[int, int, nn.Module], None]] = None,
                       checkpoint_extra: Optional[dict] = None) -> CompressionResult:
    r"""Compress an SNN's latency stage by stage, ``T = 5 → 4 → 3 → 2 → 1`` (IIR-SNN).

    Chowdhury, Rathi & Roy 2021 (arXiv:2110.05929), Sec. 3 "Iterative Initialization and
    Retraining": the network trained at ``T_k`` initialises training at ``T_{k+1} < T_k``.
    Per stage: optional threshold rescaling (:mod:`snn.latency.thresholds`), then ``epochs``
    of Adam (learning rate cosine-annealed from ``lr``) on the cross-entropy of the class
    scores (mean readout over ``T``, :func:`snn.latency.rule.readout_scores`), with static
    inputs encoded by ``encode`` at every step (direct encoding by default); the weights of
    the best validation epoch (``select="best"``) or of the last one are kept and start the
    next stage *exactly* (same tensors, buffers included). After each stage the network is
    measured on ``test_data`` (else ``val_data``): accuracy, firing rate, spikes and neuron
    updates per sample, and synaptic operations and energy with :func:`snn.energy.profile`.

    Checkpoints (atomic, ``torch.load(weights_only=True)``): ``out/stage{k}_T{T}.pt`` per
    finished stage and ``out/progress.pt`` after every epoch; with ``resume=True`` an
    interrupted run continues from the last finished epoch and gives the same result as an
    uninterrupted one (data order and dropout are seeded per stage and epoch). ``out`` also
    gets ``compress.json`` and ``compress.png`` after every stage.

    Args:
        model: an SNN ``[T, B, ...] → [T, B, C]`` (:mod:`snn.models`, a converted network, or a
            user's network of :mod:`snn` neurons); trained in place.
        train_data, val_data, test_data: Datasets (or ``(inputs, labels)`` tensor pairs) of
            *static* samples ``([...], label)``, e.g. :func:`snn.latency.static_images`.
        schedule: strictly decreasing timesteps per stage.
        epochs, lr: per stage (one value or one per stage); ``epochs=0`` measures without training.
        batch_size, weight_decay: Adam settings.
        prepare: call :func:`snn.latency.prepare_for_iir` first (``learn_threshold``,
            ``learn_leak``, ``if_beta`` are passed on); soft reset.
        threshold_rescale: ``None``, a factor, or ``"rate"`` (:func:`snn.latency.rescale_thresholds`),
            applied before every stage after the first on ``rescale_samples`` training samples.
        encode: ``(x [B, ...], T) → [T, B, ...]``.
        select: ``"best"`` (validation accuracy) or ``"last"`` epoch of each stage.
        out: run folder (``None``: nothing written, no resume).
        resume: continue the run in ``out``; without it an ``out`` holding checkpoints is an error.
        device: where to train (default: the model's device).
        seed: seeds data order and dropout per stage and epoch.
        energy_model, report_samples: energy estimate per stage (:mod:`snn.energy`).
        readout: ``"auto"``, ``"sum"`` or ``"cumulative"`` (:mod:`snn.latency.rule`).
        progress: tqdm bars.
        on_stage_start: ``callback(stage_index, T, model)`` before a stage's first epoch.
        checkpoint_extra: JSON-able data stored in every stage checkpoint (e.g. how to rebuild the model).

    Returns:
        a :class:`snn.latency.CompressionResult` (``stages``, ``model``, ``table()``).

    Raises:
        ValueError: a bad schedule / epochs / lr / select / threshold_rescale; ``resume`` with
            different settings than the stored run (names them).
        FileExistsError: ``out`` holds a run and ``resume`` is off.

    Examples:
        >>> res = snn.latency.compress_timesteps(model, train_set, val_set, (5, 4, 3, 2, 1),
        ...                                      epochs=(8, 3, 3, 3, 3), lr=1e-3, out="runs/iir")
        >>> print(res.table())
    """
    sched = _check_schedule(schedule)
    n = len(sched)
    ep, lrs = _per_stage(epochs, n, "epochs", int), _per_stage(lr, n, "lr", float)
    if select not in ("best", "last"):
        raise ValueError(f"select must be 'best' or 'last', got {select!r}")
    if threshold_rescale not in (None, "none", "rate") and not (
            isinstance(threshold_rescale, (int, float)) and not isinstance(threshold_rescale, bool)
            and 0 < threshold_rescale < math.inf):
        raise ValueError(f"threshold_rescale must be None, 'rate' or a positive factor, got {threshold_rescale!r}")
    train_ds, val_ds = as_dataset(train_data, "train_data"), as_dataset(val_data, "val_data")
    test_ds = as_dataset(test_data, "test_data") if test_data is not None else None
    if prepare:
        prepare_for_iir(model, learn_threshold=learn_threshold, learn_leak=learn_leak, if_beta=if_beta)
    dev = torch.device(device) if device is not None else next((p.device for p in model.parameters()),
                                                                torch.device("cpu"))
    model.to(dev)
    readout = check_readout(readout, model)
    config = {"schedule": sched, "epochs": ep, "lr": lrs, "batch_size": batch_size, "weight_decay": weight_decay,
              "prepare": prepare, "learn_threshold": learn_threshold, "learn_leak": learn_leak, "if_beta": if_beta,
              "threshold_rescale": threshold_rescale, "select": select, "seed": seed, "readout": readout}
    out_dir = Path(out) if out is not None else None
    stages, start_stage, progress_ck = restore(model, out_dir, sched, config, resume)

    for i in range(start_stage, n):
        T = sched[i]
        set_timesteps(model, T)
        mid = progress_ck if progress_ck is not None and progress_ck["stage"] == i else None
        factors: dict[str, float] = {}
        if mid is None:
            if i > 0 and threshold_rescale not in (None, "none"):
                g = torch.Generator().manual_seed(seed)
                idx = torch.randperm(len(train_ds), generator=g)[:rescale_samples].tolist()
                xs = torch.stack([torch.as_tensor(train_ds[j][0]) for j in idx]).to(dev)
                factors = rescale_thresholds(model, threshold_rescale, xs, sched[i - 1], T, encode)
            acc_before = _evaluate(model, val_ds, T, encode, readout, dev, max(batch_size, 64))["acc"]
            if on_stage_start is not None:
                on_stage_start(i, T, model)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=lrs[i], weight_decay=weight_decay)
        sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(ep[i], 1))
        history: list[dict] = []
        best_state, best_acc, best_epoch, first_epoch, train_time = None, -1.0, 0, 0, 0.0
        if mid is not None:
            model.load_state_dict(mid["model"])
            opt.load_state_dict(mid["optimizer"])
            sch.load_state_dict(mid["scheduler"])
            history, best_state, best_acc = list(mid["history"]), mid["best_state"], float(mid["best_acc"])
            best_epoch, first_epoch, acc_before = int(mid["best_epoch"]), int(mid["epoch"]), float(mid["acc_before"])
            factors, train_time = dict(mid["factors"]), float(mid["train_time_s"])
            log.info("resuming stage %d (T=%d) after epoch %d", i + 1, T, first_epoch)
        for epoch in range(first_epoch, ep[i]):
            torch.manual_seed(seed * 1_000_003 + i * 1_009 + epoch)
            g = torch.Generator().manual_seed(seed * 1_000_003 + i * 1_009 + epoch)
            loader = DataLoader(train_ds, batch_size=batch_size, shuffle=True, generator=g)
            lr_epoch = opt.param_groups[0]["lr"]  # the rate this epoch trains with
            t0 = time.perf_counter()
            tr_loss, tr_acc = train_epoch(model, loader, opt, dev, f"stage {i + 1}/{n} T={T} epoch {epoch + 1}/{ep[i]}",
                                          progress, forward=lambda x: readout_scores(model(encode(x, T)), readout))
            sch.step()
            train_time += time.perf_counter() - t0
            val = _evaluate(model, val_ds, T, encode, readout, dev, max(batch_size, 64))
            history.append({"epoch": epoch + 1, "train_loss": tr_loss, "train_acc": tr_acc, "val_acc": val["acc"],
                            "val_loss": val["loss"], "firing_rate": val["firing_rate"], "lr": lr_epoch})
            if select == "last" or val["acc"] > best_acc:
                best_state = copy.deepcopy(model.state_dict())
                best_acc, best_epoch = val["acc"], epoch + 1
            log.info("stage %d T=%d epoch %d: loss %.4f train %.2f%% val %.2f%% rate %.3f", i + 1, T, epoch + 1,
                     tr_loss, 100 * tr_acc, 100 * val["acc"], val["firing_rate"])
            if out_dir is not None:
                save_checkpoint({"format": 1, "kind": "snn.latency.iir-progress", "config": config, "stage": i,
                                 "epoch": epoch + 1, "model": model.state_dict(), "optimizer": opt.state_dict(),
                                 "scheduler": sch.state_dict(), "best_state": best_state, "best_acc": best_acc,
                                 "best_epoch": best_epoch, "history": history, "acc_before": acc_before,
                                 "factors": factors, "train_time_s": train_time}, out_dir / PROGRESS)
        if best_state is not None:
            model.load_state_dict(best_state)
        result = _stage_result(model, i, T, ep[i], lrs[i], acc_before, history, best_epoch, factors, train_time,
                               val_ds, test_ds, encode, readout, dev, batch_size, energy_model, report_samples)
        stages.append(result)
        log.info("stage %d T=%d done: val %.2f%% test %s rate %.3f", i + 1, T, 100 * result["val_acc"],
                 "-" if result["test_acc"] is None else f"{100 * result['test_acc']:.2f}%", result["firing_rate"])
        if out_dir is not None:
            save_checkpoint({"format": 1, "kind": "snn.latency.iir-stage", "config": config, "stage": i, "T": T,
                             "model": model.state_dict(), "result": result, "extra": checkpoint_extra or {}},
                            out_dir / stage_file(i, T))
            (out_dir / PROGRESS).unlink(missing_ok=True)
            CompressionResult(stages, model, config, out_dir).save(out_dir)
        progress_ck = None
    return CompressionResult(stages, model, config, out_dir)


def _stage_result(model, i, T, epochs, lr, acc_before, history, best_epoch, factors, train_time, val_ds, test_ds,
                  encode, readout, dev, batch_size, energy_model, report_samples) -> dict[str, Any]:
    bs = max(batch_size, 64)
    val = _evaluate(model, val_ds, T, encode, readout, dev, bs)
    rep_ds = test_ds if test_ds is not None else val_ds
    rep = _evaluate(model, test_ds, T, encode, readout, dev, bs) if test_ds is not None else val
    res = {"stage": i + 1, "T": T, "epochs": epochs, "lr": lr, "best_epoch": best_epoch,
           "val_acc_before": acc_before, "val_acc": val["acc"], "test_acc": rep["acc"] if test_ds is not None else None,
           "firing_rate": rep["firing_rate"], "layer_rates": rep["layer_rates"],
           "spikes_per_sample": rep["spikes_per_sample"], "neuron_updates_per_sample": rep["neuron_updates_per_sample"],
           "threshold_factors": factors, "neurons": neuron_parameters(model), "history": history,
           "train_time_s": train_time, "report_data": "test" if test_ds is not None else "val",
           "report_samples": min(report_samples, len(rep_ds)), "energy_pj": None, "sops": None}
    res.update(_energy(model, rep_ds, T, encode, dev, bs, energy_model, report_samples))
    return res
