import pytest
import torch

import snn


def test_time_distributed_equals_per_step_application():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 3, 3, padding=1)
    td = snn.TimeDistributed(conv)
    x = torch.rand(4, 5, 2, 8, 8)
    y = td(x)
    assert y.shape == (4, 5, 3, 8, 8)
    torch.testing.assert_close(y, torch.stack([conv(x_t) for x_t in x]))
    with pytest.raises(ValueError, match="T, B"):
        td(torch.rand(3, 2))


def test_stateful_layers_inside_time_distributed_are_refused():
    """Merging T into the batch would make a neuron or readout integrate across samples."""
    import pytest
    with pytest.raises(ValueError, match="stateful layer 0 \\(LeakyIntegrator\\)"):
        snn.TimeDistributed(snn.LeakyIntegrator(tau=5.0))
    td = snn.TimeDistributed(torch.nn.Linear(2, 2))
    td.append(snn.LIF())  # added after construction: refused at the call
    with pytest.raises(ValueError, match="stateful layer 1 \\(LIF\\)"):
        td(torch.rand(3, 2, 2))
