"""Direct (repeat) encoding: shape, values, copy semantics, argument errors."""
import pytest
import torch

from snn.encoders import DirectEncoder, direct


@pytest.mark.parametrize("shape", [(3,), (2, 5), (4, 1, 6, 6)])
@pytest.mark.parametrize("T", [1, 7])
def test_shape_and_values(shape, T):
    x = torch.randn(shape)
    out = direct(x, T)
    assert out.shape == (T, *shape)
    assert out.dtype == x.dtype
    for t in range(T):
        assert torch.equal(out[t], x)


def test_keeps_integer_dtype_and_values():
    x = torch.arange(6).reshape(2, 3)
    out = direct(x, 2)
    assert out.dtype == torch.int64 and torch.equal(out[1], x)


def test_result_is_an_independent_copy():
    x = torch.zeros(2, 3)
    out = direct(x, 4)
    assert out.is_contiguous()
    out[0, 0, 0] = 5.0
    assert x[0, 0] == 0.0 and out[1, 0, 0] == 0.0


def test_module_matches_function_and_repr():
    enc = DirectEncoder(T=3)
    x = torch.rand(4, 2)
    assert torch.equal(enc(x), direct(x, 3))
    assert "T=3" in repr(enc)


@pytest.mark.parametrize("T", [0, -2, 2.5, True, "4"])
def test_bad_T(T):
    with pytest.raises(ValueError, match="T"):
        direct(torch.ones(2), T)
    with pytest.raises(ValueError, match="T"):
        DirectEncoder(T)


def test_bad_inputs():
    with pytest.raises(ValueError, match="x"):
        direct(torch.tensor(1.0), 3)
    with pytest.raises(ValueError, match="NaN"):
        direct(torch.tensor([0.0, float("nan")]), 3)
    with pytest.raises(TypeError, match="x"):
        direct([1.0, 2.0], 3)
