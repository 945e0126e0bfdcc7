"""ConvSNN (snn/models/conv.py): shapes, input checks, and the channels-last layout."""
import pytest
import torch

import snn
from snn.models import ConvSNN
from snn.neurons.backends import available_backends
from snn.neurons.base import BaseNeuron


def _pair(backend: str) -> tuple[ConvSNN, ConvSNN]:
    torch.manual_seed(0)
    a = ConvSNN(input_size=16, channels=(4, 6), backend=backend, channels_last=True).double()
    b = ConvSNN(input_size=16, channels=(4, 6), backend=backend, channels_last=False).double()
    b.load_state_dict(a.state_dict())
    return a, b


def test_shape_and_bad_input():
    m = ConvSNN(input_size=16, channels=(4,), T=3)
    assert m(torch.rand(3, 2, 2, 16, 16)).shape == (3, 2, 10)
    with pytest.raises(ValueError, match=r"\[T, B, 2, 16, 16\]"):
        m(torch.rand(3, 2, 2, 15, 16))
    with pytest.raises(ValueError):
        m(torch.rand(4, 2, 2, 16, 16))  # T fixed at 3


def test_bad_settings_are_refused_when_built():
    # they used to build and then fail in forward with a bare shape error from torch
    with pytest.raises(ValueError, match="kernel_size must be an odd"):
        ConvSNN(kernel_size=4)
    with pytest.raises(ValueError, match="input_size=3 is too small for 2 conv blocks"):
        ConvSNN(input_size=3)
    with pytest.raises(ValueError, match="in_channels"):
        ConvSNN(in_channels=0)
    import numpy as np
    assert ConvSNN(input_size=np.int64(4), kernel_size=3)(torch.rand(2, 1, 2, 4, 4)).shape == (2, 1, 10)


@pytest.mark.parametrize("backend", ["torch", pytest.param("numba", marks=pytest.mark.skipif(
    "numba" not in available_backends("cpu"), reason="numba not installed"))])
def test_channels_last_computes_the_same_network(backend):
    """Same weights, same input: the layouts differ only by the convolutions' rounding, which
    in float64 flips no spike."""
    a, b = _pair(backend)
    x = (torch.rand(5, 3, 2, 16, 16, generator=torch.Generator().manual_seed(1)) < 0.3).double()
    outs = []
    for m in (a, b):
        snn.reset(m)
        y = m(x)
        y.square().sum().backward()
        outs.append((y.detach(), [p.grad.clone() for p in m.parameters()]))
    (ya, ga), (yb, gb) = outs
    torch.testing.assert_close(ya, yb, rtol=1e-9, atol=1e-9)
    for p, q in zip(ga, gb, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("in_channels", [1, 2])
def test_channels_last_reaches_the_neurons_and_comes_back_out(in_channels):
    """Also with one input channel, whose [N, 1, H, W] layout alone is ambiguous: the conv
    weights carry the format."""
    m = ConvSNN(in_channels=in_channels, input_size=16, channels=(4, 6), channels_last=True)
    seen = []
    for mod in m.modules():
        if isinstance(mod, BaseNeuron):
            mod.register_forward_hook(lambda _, inp, out: seen.append((inp[0], out)))
    m(torch.rand(2, 3, in_channels, 16, 16))
    assert len(seen) == 2
    for x, s in seen:
        T, B, C, H, W = x.shape
        assert x.stride() == (B * H * W * C, H * W * C, 1, W * C, C)  # [T, B, H, W, C] in memory
        assert s.stride() == x.stride()
