"""Training loop, evaluation, checkpoints and run artefacts."""
from snn.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from snn.train.data import DataSpec, build_datasets
from snn.train.loop import TrainConfig, evaluate, load_model, scores, train
from snn.train.monitor import SpikeMonitor

__all__ = ["TrainConfig", "DataSpec", "train", "evaluate", "scores", "load_model", "build_datasets",
           "save_checkpoint", "load_checkpoint", "CheckpointError", "SpikeMonitor"]
