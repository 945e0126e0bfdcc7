"""select_batch: slicing every layer's carried state equals running the kept samples from the start."""
import pytest
import torch
from torch import nn

import snn
from snn.latency import register_state_rule, select_batch
from snn.models import ConvSNN
from snn.state import StatefulModule



def _check_slicing(model: nn.Module, x: torch.Tensor, keep: torch.Tensor, split: int = 2, atol: float = 1e-6):
    """Run all samples for `split` steps, drop some, continue; compare with the kept samples alone."""
    model.eval()
    idx = keep.nonzero().flatten() if keep.dtype == torch.bool else keep
    with torch.no_grad():
        with snn.stateful(model):
            head = model(x[:split])
            select_batch(model, keep)
            tail = model(x[split:, idx])
        alone = model(x[:, idx])
    torch.testing.assert_close(head[:, idx], alone[:split], atol=atol, rtol=0)
    torch.testing.assert_close(tail, alone[split:], atol=atol, rtol=0)


def test_snn_models_conv_network():
    torch.manual_seed(0)
    model = ConvSNN(in_channels=2, input_size=12, channels=(4, 6), kernel_size=3, backend="torch")
    x = torch.rand(5, 5, 2, 12, 12)
    _check_slicing(model, x, torch.tensor([True, False, True, True, False]))


def test_index_order_and_recorded_membrane(small_snn):
    model = small_snn()
    model[1].record_v = True
    x = torch.rand(6, 4, 6) * 2
    _check_slicing(model, x, torch.tensor([3, 0]), split=3)  # reorders too
    with snn.stateful(model), torch.no_grad():
        model(x[:2])
        select_batch(model, torch.tensor([False, True, True, False]))
        assert model[1].v.shape == (2, 12) and model[1].v_seq.shape == (2, 2, 12)


def test_converted_network_with_spiking_max_pool():
    conversion = pytest.importorskip("snn.conversion")
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(4 * 4 * 4, 3))
    net = conversion.convert(ann, torch.rand(32, 2, 8, 8), backend="torch")
    assert any(isinstance(m, conversion.SpikingMaxPool) for m in net.modules())
    x = snn.encoders.direct(torch.rand(6, 2, 8, 8), 8)
    _check_slicing(net, x, torch.tensor([True, True, False, True, False, True]), split=3, atol=1e-5)


def test_delay_layers():
    delays = pytest.importorskip("snn.delays")
    torch.manual_seed(0)
    model = nn.Sequential(delays.DelayLinear(5, 7, max_delay=3), snn.LIF(tau=2.0, backend="torch"),
                          nn.Linear(7, 2), snn.LeakyIntegrator())
    _check_slicing(model, torch.rand(7, 4, 5), torch.tensor([False, True, True, False]), split=4)


class Counter(StatefulModule):
    """A user's stateful layer: running sum of its input (state ``total [B, F]``)."""

    def __init__(self):
        super().__init__()
        self.total = None

    def forward(self, x):
        outs = []
        tot = self.total if (self._stateful and self.total is not None) else torch.zeros_like(x[0])
        for x_t in x:
            tot = tot + x_t
            outs.append(tot)
        if self._stateful:
            self.total = tot
        return torch.stack(outs)

    def reset_state(self):
        self.total = None


def test_unregistered_user_layer_falls_back_to_batch_first_tensors():
    model = nn.Sequential(nn.Linear(3, 4), Counter(), snn.IF(backend="torch"), nn.Linear(4, 2))
    _check_slicing(model, torch.rand(5, 4, 3), torch.tensor([True, False, False, True]))
    with snn.stateful(model):
        model(torch.rand(1, 4, 3))
        with pytest.raises(ValueError, match="boolean keep mask"):
            select_batch(model, torch.tensor([0, 1]))


def test_own_select_state_method_and_registered_rule():
    calls = []

    class Own(Counter):
        def select_state(self, index):
            calls.append(index.tolist())
            self.total = self.total[index]

    class TimeMajor(Counter):  # keeps its state as [1, B, F]: batch on dim 1
        def forward(self, x):
            if self._stateful and self.total is not None:
                self.total = self.total[0]
            y = super().forward(x)
            if self._stateful:
                self.total = self.total[None]
            return y

    register_state_rule(TimeMajor, (("total", 1),))
    model = nn.Sequential(Own(), TimeMajor())
    _check_slicing(model, torch.rand(4, 3, 2), torch.tensor([True, False, True]))
    assert calls == [[0, 2]]
    with pytest.raises(TypeError):
        register_state_rule(nn.Linear, (("weight", 0),))


def test_bad_keep_arguments(small_snn):
    model = small_snn()
    with snn.stateful(model):
        model(torch.rand(1, 3, 6))
        with pytest.raises(ValueError, match="keep has 2 entries"):
            select_batch(model, torch.tensor([True, False]))
        with pytest.raises(ValueError, match="1-D boolean mask"):
            select_batch(model, torch.tensor([0.5, 1.0, 0.0]))
