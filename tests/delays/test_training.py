"""Training recipe helpers: σ schedule, parameter groups, clamping, rounding, learning a delay."""
import math

import pytest
import torch
from torch import nn

from snn.delays import (DelayLinear, DelayTrainingMixin, SigmaSchedule, clamp_delays, delay_param_groups,
                        round_delays, set_sigma)


def test_sigma_schedule_decays_exponentially_over_the_first_quarter():
    s = SigmaSchedule(start=12.5, end=0.5, fraction=0.25)
    values = [s(e, 100) for e in range(100)]
    assert values[0] == 12.5 and values[25:] == [pytest.approx(0.5)] * 75
    ratios = [values[e + 1] / values[e] for e in range(24)]
    assert ratios == [pytest.approx((0.5 / 12.5) ** (1 / 25))] * 24
    assert s(0, 1) == 12.5 and s(1, 1) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="fraction must be in"):
        SigmaSchedule(1.0, fraction=0)
    with pytest.raises(ValueError, match="start must be a positive"):
        SigmaSchedule(-1.0)
    with pytest.raises(ValueError, match="epochs >= 1"):
        s(0, 0)


class Net(DelayTrainingMixin, nn.Module):
    def __init__(self, delays="learned"):
        super().__init__()
        self.a = DelayLinear(4, 5, 8, delays=delays)
        self.b = nn.Linear(5, 2)
        self.sigma_schedule = SigmaSchedule(4.0, 0.5, 0.5)


def test_param_groups_give_positions_their_own_learning_rate_and_no_weight_decay():
    net = Net()
    groups = delay_param_groups(net, lr=1e-3, weight_decay=1e-5)
    assert [g["name"] for g in groups] == ["weights", "delays"]
    assert groups[1]["params"] == [net.a.delay] and groups[1]["lr"] == pytest.approx(0.1)
    assert groups[1]["weight_decay"] == 0.0 and groups[0]["weight_decay"] == 1e-5
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in net.parameters()} - {id(net.a.delay)}
    assert delay_param_groups(net, 1e-3, position_lr=0.05)[1]["lr"] == 0.05
    torch.optim.Adam(groups)  # accepted as is
    fixed = Net("fixed")
    assert [g["name"] for g in fixed.param_groups(1e-3)] == ["weights"]
    with pytest.raises(ValueError, match="lr must be > 0"):
        delay_param_groups(net, 0.0)


def test_hooks_schedule_clamp_and_round():
    net = Net()
    net.on_epoch_start(0, 4)
    assert float(net.a.sigma) == 4.0
    net.on_epoch_start(2, 4)
    assert float(net.a.sigma) == pytest.approx(0.5)
    with torch.no_grad():
        net.a.delay[0, 0] = 30.0
    net.after_optimizer_step()
    assert float(net.a.delay.detach().max()) <= 8
    net.on_train_end()
    assert net.a.integer and torch.equal(net.a.delay, net.a.delay.round())
    set_sigma(net, 0.3)
    clamp_delays(net)
    assert float(net.a.sigma) == pytest.approx(0.3)
    assert round_delays(net) is net


@pytest.mark.parametrize("interpolation", ["gaussian", "linear"])
def test_a_position_learns_the_delay_that_the_task_needs(interpolation):
    """One synapse, an input spike at t = 2, reward the output at t = 7: d must move to 5
    (from 2.4 with the Gaussian, whose gradient reaches that far at σ = 1.5; from 4.3 with
    the linear interpolation, whose gradient is local to the two taps)."""
    layer = DelayLinear(1, 1, 10, sigma=1.5, interpolation=interpolation, bias=False, backend="numba")
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.delay.fill_(2.4 if interpolation == "gaussian" else 4.3)
    x = torch.zeros(12, 1, 1)
    x[2] = 1.0
    target = torch.zeros(12, 1, 1)
    target[7] = 1.0
    opt = torch.optim.Adam(delay_param_groups(layer, lr=1e-3, position_lr=0.05))
    for _ in range(100):
        loss = (layer(x) - target).square().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        layer.clamp_delays_()
    assert math.isclose(float(layer.delay.detach()), 5.0, abs_tol=0.25), float(layer.delay.detach())
    layer.round_delays_()
    assert layer(x)[:, 0, 0].argmax().item() == 7
