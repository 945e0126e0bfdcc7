"""Host-side translation of a NeuronSpec into kernel arguments (snn/cuda/params.py)."""
import torch

from snn.cuda import dynamics as dyn
from snn.cuda.params import channel_layout, flat_param, kernel_config, memory_order, supports
from snn.neurons import IF, LIF, PLIF
from snn.neurons.functional import NeuronSpec
from snn.surrogate import ATan, Sigmoid


def test_kernel_config_modes_and_flags():
    assert kernel_config(IF().spec(3)).charge_mode == dyn.CHARGE_FMA
    assert kernel_config(LIF().spec(3)).charge_mode == dyn.CHARGE_FMA
    assert kernel_config(LIF(decay_input=True).spec(3)).charge_mode == dyn.CHARGE_DECAY_INPUT
    spec = NeuronSpec(beta=0.5, v_threshold=1.0, v_reset=None, surrogate=Sigmoid(3.0), detach_reset=True)
    cfg = kernel_config(spec)
    assert (cfg.charge_mode, cfg.hard, cfg.keep_reset, cfg.kind) == (dyn.CHARGE_MUL_ADD, 0.0, 0.0, dyn.SIGMOID)
    assert (cfg.sa, cfg.sb) == (3.0, 3.0)
    cfg = kernel_config(PLIF(v_reset=-0.5).spec(3))
    assert (cfg.hard, cfg.v_reset, cfg.keep_reset) == (1.0, -0.5, 1.0)


def test_supports():
    assert supports(LIF(num_channels=4, learn_threshold=True).spec(5))

    class Custom(ATan):
        pass
    assert not supports(LIF(surrogate=Custom()).spec(3))
    full = NeuronSpec(beta=torch.rand(2, 3), v_threshold=1.0, v_reset=0.0, surrogate=ATan())
    assert not supports(full)  # a per-neuron decay [B, N] is not a per-channel parameter
    assert not supports(NeuronSpec(beta=torch.tensor([1, 2]), v_threshold=1.0, v_reset=0.0, surrogate=ATan()))


def test_channel_layout():
    x = torch.zeros(2, 3, 4, 5, 6)
    assert channel_layout(x, torch.tensor(0.5), 1.0) == (1, 30)
    assert channel_layout(x, torch.zeros(4, 1, 1), torch.zeros(4, 1, 1)) == (4, 30)
    assert channel_layout(x, torch.zeros(5, 1, 1), None) is None           # wrong channel count
    assert channel_layout(torch.zeros(2, 3, 7), torch.zeros(7), None) == (7, 1)
    assert channel_layout(torch.zeros(2, 3, 7), torch.zeros(7, 1), None) is None  # wrong rank
    # S counts the dims walked inside the channel dim: channels-last has none, [T, C, B, ...] has B too
    assert channel_layout(x, torch.zeros(4, 1, 1), None, order=(0, 1, 3, 4, 2)) == (4, 1)
    assert channel_layout(x, torch.zeros(4, 1, 1), None, order=(0, 2, 1, 3, 4)) == (4, 90)


def test_memory_order():
    x = torch.zeros(2, 3, 4, 5, 6)
    assert memory_order(x) == (0, 1, 2, 3, 4)
    cl = torch.zeros(6, 4, 5, 7).contiguous(memory_format=torch.channels_last).view(2, 3, 4, 5, 7)
    assert memory_order(cl) == (0, 1, 3, 4, 2) and cl.permute(memory_order(cl)).is_contiguous()
    assert memory_order(x.transpose(0, 1)) == (0, 1, 2, 3, 4)         # T not outermost: copy
    assert memory_order(x[..., ::2]) == (0, 1, 2, 3, 4)                # not dense: copy
    ones = torch.zeros(2, 1, 3, 1, 4).permute(0, 1, 4, 3, 2)           # size-1 dims go last
    assert ones.permute(memory_order(ones)).is_contiguous() and memory_order(ones)[-2:] == (1, 3)


def test_flat_param():
    assert torch.equal(flat_param(None, 1.0, 3, torch.float32, torch.device("cpu")), torch.ones(3))
    assert torch.equal(flat_param(0.25, 0.0, 2, torch.float64, torch.device("cpu")),
                       torch.full((2,), 0.25, dtype=torch.float64))
    p = torch.arange(3.0).view(3, 1, 1).requires_grad_()
    q = flat_param(p, 0.0, 3, torch.float32, torch.device("cpu"))
    assert q.shape == (3,) and q.requires_grad and q.is_contiguous()
    q.backward(torch.tensor([1.0, 2.0, 3.0]))  # the [P] gradient reaches the [C, 1, 1] parameter
    assert torch.equal(p.grad, torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1))
    s = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    flat_param(s, 0.0, 4, torch.float32, torch.device("cpu")).sum().backward()  # a scalar, expanded
    assert s.grad.dtype == torch.float64 and s.grad.item() == 4.0
