"""The data the converter reads: static ANN inputs ``[B, ...]`` with or without labels
(the shared readers of :mod:`snn.datasets.batches`)."""
from snn.datasets.batches import DataLike, StaticFrames, iter_batches

__all__ = ["iter_batches", "StaticFrames", "DataLike"]
