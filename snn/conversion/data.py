"""The data the converter reads: static ANN inputs ``[B, ...]`` with or without labels
(the shared readers of :mod:`snn.datasets.batches`)."""
from snn.datasets.batches import DataLike, StaticFrames, check_batching, iter_batches

__all__ = ["iter_batches", "check_batching", "StaticFrames", "DataLike"]
