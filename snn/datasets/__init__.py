"""Event datasets: file readers, folders, tonic datasets by name, cached dense frames.

Events are numpy structured arrays in tonic's format (``tonic.io.events_struct``: x, y int16,
t int64 in µs, p bool); sensor sizes are tonic's ``(W, H, P)``. :class:`FrameDataset` turns
them into ``float32 [T, P, H, W]`` frames (``[T, N]`` for 1-D sensors) and
:func:`collate_time_first` batches them as ``[T, B, ...]``.

``snn.datasets.digits`` is imported only when used (``open_dataset("digits-events")``).
"""
from snn.datasets.collate import collate_time_first
from snn.datasets.errors import DatasetDownloadError, EventFileError
from snn.datasets.folder import EventFolder
from snn.datasets.frames import FrameDataset, FrameSpec
from snn.datasets.readers import READERS, read_events, register_reader
from snn.datasets.registry import DATASETS, has_test_split, open_dataset, sensor_size_of
from snn.datasets.splits import train_val_split

__all__ = ["EventFolder", "read_events", "register_reader", "READERS", "EventFileError",
           "DatasetDownloadError", "open_dataset", "DATASETS", "sensor_size_of", "has_test_split",
           "FrameDataset", "FrameSpec", "collate_time_first", "train_val_split"]
