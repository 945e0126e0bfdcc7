"""Bernoulli rate coding: statistics, generator determinism, global RNG, range errors."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snn.encoders import RateEncoder, rate


def test_empirical_rate_matches_probability():
    T = 4000
    x = torch.linspace(0, 1, 11).repeat(3, 1)  # [3, 11]
    s = rate(x, T, generator=torch.Generator().manual_seed(0))
    assert s.shape == (T, 3, 11) and s.dtype == torch.float32
    assert set(torch.unique(s).tolist()) <= {0.0, 1.0}
    emp = s.mean(0)
    tol = 5 * torch.sqrt(x * (1 - x) / T) + 1e-9  # 5 binomial standard deviations
    assert torch.all((emp - x).abs() <= tol), (emp - x).abs().max()
    assert torch.all(emp[:, 0] == 0) and torch.all(emp[:, -1] == 1)  # p = 0 and 1 are exact


def test_gain_scales_probability():
    T = 4000
    x = torch.full((50,), 0.4)
    emp = rate(x, T, generator=torch.Generator().manual_seed(1), gain=0.5).mean().item()
    assert abs(emp - 0.2) < 5 * math.sqrt(0.2 * 0.8 / (T * 50))


def test_steps_are_independent():
    s = rate(torch.full((2000,), 0.5), 2, generator=torch.Generator().manual_seed(2))
    agree = (s[0] == s[1]).float().mean().item()  # 0.5 for independent steps, 1 for repeats
    assert abs(agree - 0.5) < 0.1


def test_same_generator_seed_same_spikes_other_seed_different():
    x = torch.rand(8, 20, generator=torch.Generator().manual_seed(9))
    a = rate(x, 30, generator=torch.Generator().manual_seed(123))
    b = rate(x, 30, generator=torch.Generator().manual_seed(123))
    c = rate(x, 30, generator=torch.Generator().manual_seed(124))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_generator_leaves_global_rng_untouched():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    rate(torch.full((10, 10), 0.3), 50, generator=torch.Generator().manual_seed(5))
    RateEncoder(5)(torch.rand(3, generator=torch.Generator()), generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), before)
    rate(torch.full((10, 10), 0.3), 50)  # without a generator the global RNG is used
    assert not torch.equal(torch.get_rng_state(), before)


def test_module_matches_function():
    x = torch.rand(4, 5)
    enc = RateEncoder(T=12, gain=0.8)
    a = enc(x, generator=torch.Generator().manual_seed(7))
    b = rate(x, 12, generator=torch.Generator().manual_seed(7), gain=0.8)
    assert torch.equal(a, b)
    assert "T=12" in repr(enc) and "gain=0.8" in repr(enc)


@pytest.mark.parametrize("x, gain, shown", [([0.2, 1.5], 1.0, "1.5"), ([-0.1, 0.5], 1.0, "-0.1"),
                                            ([0.2, 0.6], 2.0, "1.2")])
def test_out_of_range_raises_naming_x_and_range(x, gain, shown):
    with pytest.raises(ValueError, match="x") as info:
        rate(torch.tensor(x), 4, gain=gain)
    assert shown in str(info.value)


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="NaN"):
        rate(torch.tensor([0.5, float("nan")]), 4)
    with pytest.raises(ValueError, match="T"):
        rate(torch.tensor([0.5]), 0)
    with pytest.raises(TypeError):
        rate(torch.tensor([True]), 3)


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), T=st.integers(1, 6), seed=st.integers(0, 2**31))
def test_shapes_and_binary_values(shape, T, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g)
    s = rate(x, T, generator=g)
    assert s.shape == (T, *shape)
    assert torch.all((s == 0) | (s == 1))
    assert torch.all(s[:, x == 0] == 0)


@pytest.mark.parametrize("gain", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_gain_is_rejected(gain):
    # NaN passed the [0, 1] range check and gave all-zero spikes
    with pytest.raises(ValueError, match="gain must be a finite real number"):
        rate(torch.full((2, 3), 0.5), 10, gain=gain)
    with pytest.raises(ValueError, match="gain must be a finite real number"):
        RateEncoder(10, gain=gain)


@pytest.mark.parametrize("gain", ["0.5", None, True])
def test_non_number_gain_is_a_type_error(gain):
    with pytest.raises(TypeError, match="gain"):
        rate(torch.full((2, 3), 0.5), 10, gain=gain)
    with pytest.raises(TypeError, match="gain"):
        RateEncoder(10, gain=gain)


def test_zero_gain_times_infinite_input_is_rejected_not_silent():
    with pytest.raises(ValueError, match=r"x \* gain.*NaN"):
        rate(torch.tensor([float("inf"), 0.5]), 4, gain=0.0)


def test_numpy_and_tensor_gains_still_work():
    x = torch.full((4,), 0.5)
    ref = rate(x, 8, generator=torch.Generator().manual_seed(3), gain=0.5)
    for g in (np.float32(0.5), torch.tensor(0.5)):
        assert torch.equal(rate(x, 8, generator=torch.Generator().manual_seed(3), gain=g), ref)
    assert RateEncoder(8, gain=torch.tensor(0.5)).gain == 0.5


@pytest.mark.parametrize("generator", [0, 1.5, "seed", np.random.default_rng(0)])
def test_generator_must_be_a_torch_generator(generator):
    # generator=0 used to fail with "AttributeError: 'int' object has no attribute 'device'"
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None"):
        rate(torch.full((2, 3), 0.5), 10, generator=generator)
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None"):
        RateEncoder(10)(torch.full((2, 3), 0.5), generator=generator)
