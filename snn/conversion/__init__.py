"""ANN → SNN conversion of trained CNNs (torch.fx graph rewriting).

``snn.convert(model, calibration_data)`` folds batch norm, calibrates one firing threshold per
activation (max or percentile, layer- or channel-wise; QCFS activations use their learnt clip
λ), and returns a :class:`ConvertedSNN` of IF neurons (soft reset, initial membrane θ/2)
that maps ``[T, B, ...]`` to the accumulated output ``[T, B, classes]``.
:func:`conversion_report` measures accuracy against T in one run; ``snn convert`` is the CLI.

Modules: :mod:`~snn.conversion.ops` (what is supported, tracing), :mod:`~snn.conversion.prepare`
(BN folding, canonical graph), :mod:`~snn.conversion.calibrate`, :mod:`~snn.conversion.spiking`
(IF activation, spiking max pooling), :mod:`~snn.conversion.converter`,
:mod:`~snn.conversion.report`, :mod:`~snn.conversion.activations` (QCFS, ClipReLU),
:mod:`~snn.conversion.ann_train`, :mod:`~snn.conversion.io`, :mod:`~snn.conversion.cli`,
:mod:`~snn.conversion.experiment` (N-MNIST / digits figures).
"""
from snn.conversion.activations import ClipReLU, QCFS, make_activation
from snn.conversion.ann_train import ann_accuracy, train_ann
from snn.conversion.calibrate import calibrate
from snn.conversion.converter import ConvertedSNN, build_snn, convert
from snn.conversion.data import StaticFrames, iter_batches
from snn.conversion.io import load_ann, load_converted, save_converted
from snn.conversion.ops import ConversionError, supported_summary
from snn.conversion.prepare import activation_sites, prepare_ann
from snn.conversion.report import conversion_report, default_checkpoints, plot_report, save_report
from snn.conversion.spiking import IFActivation, SpikingMaxPool

__all__ = ["convert", "ConvertedSNN", "prepare_ann", "calibrate", "build_snn", "activation_sites",
           "QCFS", "ClipReLU", "make_activation", "IFActivation", "SpikingMaxPool", "ConversionError",
           "supported_summary", "conversion_report", "save_report", "plot_report", "default_checkpoints",
           "train_ann", "ann_accuracy", "StaticFrames", "iter_batches", "load_ann", "save_converted",
           "load_converted"]
