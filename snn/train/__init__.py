"""Training loop, evaluation, checkpoints and run artefacts."""
from snn.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, write_json
from snn.train.data import DataSpec, build_datasets
from snn.train.loop import TrainConfig, evaluate, load_model, scores, train, train_epoch
from snn.train.monitor import SpikeMonitor

__all__ = ["TrainConfig", "DataSpec", "train", "evaluate", "scores", "load_model", "build_datasets",
           "save_checkpoint", "load_checkpoint", "CheckpointError", "SpikeMonitor", "train_epoch", "write_json"]
