"""State semantics: forward starts from rest, step() carries, snn.reset / snn.stateful."""
import pytest
import torch

import snn
from snn.neurons import IF, LIF, PLIF, LeakyIntegrator

MODELS = [lambda: IF(v_reset=None), lambda: LIF(tau=3.0), lambda: PLIF(tau=2.0, detach_reset=True),
          lambda: LIF(num_channels=4, learn_threshold=True), lambda: LeakyIntegrator(tau=3.0)]


@pytest.mark.parametrize("make", MODELS)
def test_single_step_equals_multi_step_with_gradients(make):
    torch.manual_seed(0)
    x = (torch.rand(15, 3, 4) * 2).requires_grad_()
    n = make()
    y_multi = n(x)
    (g_multi,) = torch.autograd.grad((y_multi * torch.arange(4.0)).sum(), x)
    snn.reset(n)
    y_step = torch.stack([n.step(x_t) for x_t in x.unbind(0)])
    (g_step,) = torch.autograd.grad((y_step * torch.arange(4.0)).sum(), x)
    torch.testing.assert_close(y_multi, y_step)
    torch.testing.assert_close(g_multi, g_step)


def test_forward_always_starts_from_rest():
    n = LIF(tau=5.0)
    x = torch.rand(10, 2, 8) * 3
    assert torch.equal(n(x), n(x))
    n.step(x[0])  # a carried streaming state does not leak into forward
    assert torch.equal(n(x), n(torch.cat([x])))


def test_step_carries_until_reset():
    n = IF(v_reset=None)
    x = torch.full((2, 1), 0.6)
    assert n.step(x).tolist() == [[0.0], [0.0]]
    assert n.step(x).tolist() == [[1.0], [1.0]]
    snn.reset(n)
    assert n.v is None
    assert n.step(x).tolist() == [[0.0], [0.0]]


def test_batch_size_change_in_stream_is_an_error_not_a_silent_resample():
    n = LIF()
    n.step(torch.rand(4, 3))
    with pytest.raises(ValueError, match="snn.reset"):
        n.step(torch.rand(5, 3))


def test_stateful_context_processes_chunks_like_one_sequence():
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), LIF(tau=4.0), torch.nn.Linear(5, 3), LeakyIntegrator())
    x = torch.rand(20, 2, 6) * 2
    full = model(x)
    with snn.stateful(model):
        chunks = torch.cat([model(c) for c in x.split(7)])
    torch.testing.assert_close(full, chunks)
    assert model[1].v is None  # reset on exit


def test_input_errors():
    n = LIF()
    with pytest.raises(ValueError, match=r"\[T, B, \.\.\.\]"):
        n(torch.rand(5))
    with pytest.raises(ValueError, match="NaN"):
        n(torch.full((3, 2, 2), float("nan")))
    for t in (0, 5, 9):  # a single NaN at any step, in any neuron, for every model and backend
        for m in (snn.IF(v_reset=None), snn.LIF(), snn.PLIF(), snn.LIF(backend="torch"), snn.LeakyIntegrator()):
            x = torch.rand(10, 2, 3)
            x[t, 1, 2] = float("nan")
            with pytest.raises(ValueError, match="NaN"):
                m(x)
    with pytest.raises(TypeError, match="torch.Tensor"):
        n([[1.0]])
    with pytest.raises(ValueError, match="T=4"):
        snn.neurons.check_sequence(torch.rand(3, 2, 2), T=4)
    for m in (LIF(), LIF(backend="torch"), snn.LeakyIntegrator()):  # T=0 was a bare IndexError
        with pytest.raises(ValueError, match="no timesteps"):
            m(torch.rand(0, 2, 3))
    assert LIF()(torch.rand(4, 0, 3)).shape == (4, 0, 3)  # an empty batch is fine


@pytest.mark.filterwarnings("ignore:Anomaly Detection has been enabled")
def test_nan_tests_need_no_host_sync_off_the_cpu():
    """Off the CPU the NaN tests (whose answer must reach the host) run only under anomaly
    detection. A meta tensor stands in for a CUDA one: reading its value raises, so a test
    that ran would fail here."""
    from snn.delays.layer import _check_finite
    from snn.neurons.base import check_no_nan_membrane, nan_checks_enabled
    x = torch.empty(4, 2, 3, device="meta")
    assert nan_checks_enabled(torch.rand(2)) and not nan_checks_enabled(x)
    check_no_nan_membrane(x[0])
    snn.neurons.check_sequence(x)
    _check_finite(x, "x")
    with torch.autograd.detect_anomaly():
        assert nan_checks_enabled(x)
        for check in (lambda: check_no_nan_membrane(x[0]), lambda: snn.neurons.check_sequence(x),
                      lambda: _check_finite(x, "x")):
            with pytest.raises((RuntimeError, NotImplementedError)):
                check()


@pytest.mark.parametrize("backend", ["torch", "numba"])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.bool])
def test_integer_and_bool_inputs_integrate_in_the_layers_float_dtype(dtype, backend):
    """v_init and the leak must not be truncated to the input's integer type (an IF with
    v_init=-1 on uint8 zeros fired: -1 wrapped to 255)."""
    ones = torch.ones(4, 2, 3)
    for make in (lambda: IF(v_init=-1.0, backend=backend), lambda: LIF(v_init=0.5, v_threshold=1.2, backend=backend),
                 lambda: PLIF(v_init=0.3, backend=backend)):
        for x in (ones, torch.zeros(4, 2, 3)):
            ref = make()(x)
            out = make()(x.to(dtype))
            assert out.dtype == torch.float32 and torch.equal(out, ref)
            n = make()
            stepped = torch.stack([n.step(x_t.to(dtype)) for x_t in x])
            assert stepped.dtype == torch.float32 and torch.equal(stepped, ref)
    assert LIF(backend=backend)(ones.to(dtype)).sum() >= 0
    li = LeakyIntegrator(tau=float("inf"))
    total = li(torch.ones(300, 1, 1, dtype=torch.uint8) if dtype != torch.bool else torch.ones(300, 1, 1, dtype=dtype))
    assert total.dtype == torch.float32 and total[-1].item() == 300.0  # no uint8 overflow / bool saturation


def test_complex_input_is_a_type_error():
    for layer in (LIF(), LeakyIntegrator()):
        with pytest.raises(TypeError, match="must be real"):
            layer(torch.ones(3, 1, 2, dtype=torch.complex64))
