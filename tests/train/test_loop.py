"""snn.train.loop.train_epoch: a non-finite loss stops training before it reaches the weights."""
import math

import pytest
import torch
from torch import nn

import snn
from snn.train import train_epoch


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), snn.LIF(backend="torch"), nn.Linear(8, 3), snn.LeakyIntegrator())


def _batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Three batches: inputs ``[T=4, B=5, 6]``, targets ``[5]`` in 0..2."""
    g = torch.Generator().manual_seed(1)
    return [(torch.rand(4, 5, 6, generator=g), torch.randint(0, 3, (5,), generator=g)) for _ in range(3)]


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_loss_raises_before_the_step(value):
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = []

    def forward(x):  # the scores of the second batch turn non-finite (as a diverged network's would)
        calls.append(1)
        s = model(x).mean(0)
        return s * value if len(calls) == 2 else s
    snapshot = {}

    def keep_weights():  # runs after every completed optimizer step
        snapshot.update({k: v.clone() for k, v in model.state_dict().items()})
    model.after_optimizer_step = keep_weights
    with pytest.raises(FloatingPointError, match=r"epoch 1: the loss of batch 2 is (nan|inf).*step was skipped"):
        train_epoch(model, _batches(), opt, torch.device("cpu"), "epoch 1", forward=forward)
    assert len(calls) == 2 and snapshot
    for k, v in model.state_dict().items():  # the weights are those of the last finite step
        assert torch.isfinite(v).all(), k
        torch.testing.assert_close(v, snapshot[k], rtol=0, atol=0)


def test_finite_epoch_returns_mean_loss_and_accuracy():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss, acc = train_epoch(model, _batches(), opt, torch.device("cpu"))
    assert math.isfinite(loss) and loss > 0 and 0.0 <= acc <= 1.0
