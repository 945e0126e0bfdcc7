"""Static ANN inputs from what a user names on the command line: a tensor file, a dataset name,
or a folder of event recordings (accumulated into one frame per sample)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor

from snn.conversion.data import StaticFrames

__all__ = ["open_static"]


def _tensor_file(path: Path) -> Any:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: cannot read tensors ({type(e).__name__}: {e})") from e
    if isinstance(obj, Tensor):
        return obj
    if isinstance(obj, dict):
        x = obj.get("x", obj.get("inputs"))
        y = obj.get("y", obj.get("labels"))
        if isinstance(x, Tensor):
            return x if y is None else (x, torch.as_tensor(y))
    if isinstance(obj, (tuple, list)) and len(obj) == 2 and all(isinstance(v, Tensor) for v in obj):
        return tuple(obj)
    raise ValueError(f"{path}: expected a tensor [N, ...], a dict with 'x' (and 'y'), or a pair (x, y)")


def open_static(source: str, labels: Optional[str] = None, *, train: bool = True, root: Optional[str] = None,
                sensor_size: Optional[tuple[int, int, int]] = None, scale: float = 1.0,
                cache_dir: Optional[str] = None, progress: bool = True) -> Any:
    """Open ``source`` as static ANN inputs (with labels where known).

    * a ``.pt``/``.pth`` file: a tensor ``[N, ...]``, a dict ``{"x": ..., "y": ...}`` or a pair
      ``(x, y)``, loaded with ``weights_only=True``;
    * a dataset name of :data:`snn.datasets.DATASETS` (e.g. ``"digits-events"``, or ``"nmnist"``
      with ``root``): its ``train`` split as accumulated event frames;
    * a folder of event recordings (:class:`snn.datasets.EventFolder`, class sub-folders or
      ``labels``): accumulated event frames.

    Event data becomes one count image per sample, ``FrameDataset(..., n_time_bins=1)`` summed
    over time and multiplied by ``scale`` (:class:`StaticFrames`), e.g. ``[2, 34, 34]``.

    Raises:
        FileNotFoundError: ``source`` is neither a file, a dataset name nor a folder.
        ValueError: unreadable tensor file; errors of the dataset readers.
    """
    from snn.datasets import DATASETS, EventFolder, FrameDataset, open_dataset
    p = Path(source).expanduser()
    if p.is_file():
        return _tensor_file(p)
    if source.lower() in DATASETS:
        kw = {} if source.lower() == "digits-events" else {"root": root}
        events = open_dataset(source, train=train, **kw)
        name = source.lower()
    elif p.is_dir():
        if sensor_size is None:  # the smallest sensor holding every event
            from snn.train.data import infer_sensor_size
            sensor_size = infer_sensor_size(EventFolder(p, labels, sensor_size=(2**15 - 1, 2**15 - 1, 2)))
        events = EventFolder(p, labels, sensor_size=sensor_size)
        name = f"folder:{p.name}"
    else:
        raise FileNotFoundError(f"data {source!r} is neither a tensor file, a dataset name ({', '.join(DATASETS)}) "
                                "nor a folder of event recordings")
    frames = FrameDataset(events, n_time_bins=1, cache_dir=cache_dir, name=name, progress=progress)
    return StaticFrames(frames, scale=scale)
