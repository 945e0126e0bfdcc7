"""A small training loop for the ANNs that are converted (ReLU or QCFS), and their accuracy."""
from __future__ import annotations

import math
import time
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from snn.datasets.batches import DataLike, as_dataset, iter_batches

__all__ = ["train_ann", "ann_accuracy"]


@torch.no_grad()
def ann_accuracy(model: nn.Module, data: DataLike, batch_size: int = 256,
                 device: str | torch.device = "cpu") -> float:
    """Top-1 accuracy in [0, 1] of ``model`` (``[B, ...] → [B, classes]``) on labelled ``data``
    (anything :func:`snn.datasets.batches.iter_batches` accepts); puts ``model`` in eval mode on ``device``.

    Raises:
        ValueError, TypeError: unlabelled, empty or unsupported ``data``, or ``batch_size`` not
            a positive int (as ``iter_batches``).
    """
    model = model.to(device).eval()
    correct = n = 0
    for x, y in iter_batches(data, batch_size, need_labels=True, name="data"):
        correct += int((model(x.to(device)).argmax(1) == y.to(device)).sum())
        n += len(y)
    return correct / n


def train_ann(model: nn.Module, train_data: Any, *, test_data: Any = None, epochs: int = 10, batch_size: int = 64,
              lr: float = 1e-3, weight_decay: float = 5e-4, clip_lr: Optional[float] = None,
              generator: Optional[torch.Generator] = None, device: str | torch.device = "cpu",
              progress: bool = False) -> list[dict[str, float]]:
    """Train a classifier ANN with Adam (weight decay on weights, cosine-annealed learning rate)
    and cross-entropy; e.g. a ReLU or QCFS network to be converted with :func:`snn.convert`.

    Args:
        model: ``[B, ...] → [B, classes]``, trained in place.
        train_data: a Dataset of ``(x, label)`` or an ``(inputs, labels)`` pair of tensors.
        test_data: optional labelled data evaluated after each epoch.
        epochs, batch_size, lr, weight_decay: the usual; weight decay is not applied to
            biases, norms and QCFS/ClipReLU clips.
        clip_lr: learning rate of the clip parameters λ (default ``lr``).
        generator: shuffling randomness (default: a generator seeded with 0).
        device: where to train.
        progress: tqdm bar per epoch.

    Returns:
        one dict per epoch: ``epoch``, ``loss``, ``train_acc``, ``test_acc`` (if ``test_data``), ``seconds``.

    Raises:
        ValueError: non-positive ``epochs``/``batch_size``/``lr``.
        TypeError: unsupported ``train_data``.
    """
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(f"epochs, batch_size and lr must be positive, got {epochs}, {batch_size}, {lr}")
    dev = torch.device(device)
    model.to(dev)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    loader = DataLoader(as_dataset(train_data, "train_data"), batch_size=batch_size, shuffle=True, generator=gen)
    decay, no_decay, clips = [], [], []
    for name, p in model.named_parameters():
        (clips if name.endswith("clip") else decay if p.dim() > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if clips:
        groups.append({"params": clips, "weight_decay": 0.0, "lr": clip_lr or lr})
    opt = torch.optim.Adam(groups, lr=lr)
    steps = epochs * max(1, len(loader))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, steps) / steps)))
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        t0, total, correct, n = time.perf_counter(), 0.0, 0, 0
        for x, y in tqdm(loader, desc=f"epoch {epoch}/{epochs}", disable=not progress, leave=False):
            x, y = x.to(dev), y.to(dev)
            out = model(x)
            loss = F.cross_entropy(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(y)
            correct += int((out.argmax(1) == y).sum())
            n += len(y)
        rec = {"epoch": epoch, "loss": total / n, "train_acc": correct / n}
        if test_data is not None:
            rec["test_acc"] = ann_accuracy(model, test_data, device=dev)
        rec["seconds"] = round(time.perf_counter() - t0, 2)
        history.append(rec)
    model.eval()
    return history
