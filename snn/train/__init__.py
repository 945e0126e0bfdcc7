"""Training loop, evaluation, checkpoints and run artefacts."""
from snn.train.checkpoint import (CheckpointError, load_checkpoint, load_train_checkpoint, save_checkpoint,
                                  write_json)
from snn.train.data import DataSpec, build_datasets
from snn.train.loop import TrainConfig, check_device, evaluate, load_model, scores, train, train_epoch
from snn.train.monitor import SpikeMonitor
from snn.train.runs import create_run_folder

__all__ = ["TrainConfig", "DataSpec", "train", "evaluate", "scores", "load_model", "build_datasets",
           "save_checkpoint", "load_checkpoint", "load_train_checkpoint", "CheckpointError", "SpikeMonitor",
           "train_epoch", "write_json", "check_device", "create_run_folder"]
