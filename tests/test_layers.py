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
