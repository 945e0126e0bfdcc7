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


# ------------------------------------------------------------------ the cosine of a resumed run with a new epoch count
def _run(epochs: int, steps: int, state=None, new_epochs=None, groups=(1.0, 0.1)):
    """Rates of ``steps`` epochs of a cosine planned for ``epochs`` (resumed from ``state`` =
    (optimizer, scheduler, done) with ``new_epochs``, as `snn train --resume --epochs` does);
    returns ``(rates per epoch per group, optimizer state, scheduler state, done)``."""
    from snn.train.loop import _replan_cosine
    params = [nn.Parameter(torch.zeros(1)) for _ in groups]
    opt = torch.optim.Adam([{"params": [p], "lr": lr} for p, lr in zip(params, groups)])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    done = 0
    if state is not None:
        opt.load_state_dict(state[0])
        sched.load_state_dict(state[1])
        done = state[2]
        sched = _replan_cosine(opt, sched, done, new_epochs)
    rates = []
    for _ in range(steps):
        rates.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
        done += 1
    return rates, opt.state_dict(), sched.state_dict(), done


def _cos(lr: float, k: int, n: int) -> float:
    return lr * (1 + math.cos(math.pi * k / n)) / 2


def test_resume_with_its_own_epoch_count_keeps_the_schedule_exactly():
    full = _run(5, 5)[0]
    _, o, s, done = _run(5, 2)
    assert _run(5, 3, (o, s, done), 5)[0] == full[2:]  # bit-identical


def _close(a, b) -> bool:
    return torch.allclose(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64),
                          rtol=1e-9, atol=0)


def test_another_epoch_count_continues_the_cosine_from_the_current_rate():
    _, o, s, done = _run(4, 1)
    nxt = [_cos(lr, 1, 4) for lr in (1.0, 0.1)]      # the 4-epoch plan's rate for epoch 2, per group
    longer = _run(4, 5, (o, s, done), 6)[0]         # extended 4 → 6: epochs 2..6
    assert _close(longer, [[_cos(r, k, 5) for r in nxt] for k in range(5)])
    assert _close(_run(4, 1, (o, s, done), 2)[0], [nxt])    # shortened 4 → 2
    # a finished run, extended: from the rate of its last epoch (not 0, and never climbing back up)
    r3, o, s, done = _run(3, 3)
    more = _run(3, 2, (o, s, done), 5)[0]
    assert _close(more, [r3[-1], [r / 2 for r in r3[-1]]]) and r3[-1][0] > 0
    # the re-planned schedule, interrupted and resumed with the same count, stays exactly the same
    _, o, s, done = _run(3, 3)
    rates, o, s, done = _run(3, 1, (o, s, done), 5)
    assert rates + _run(3, 1, (o, s, done), 5)[0] == more


def test_a_schedule_run_past_its_end_restarts_from_the_plans_last_epoch():
    """A checkpoint of the old `--resume --epochs` bug: a 2-epoch plan stepped 3 times (rate 0, then
    climbing); extended to 5 it anneals from the plan's last-epoch rate instead."""
    rates, o, s, done = _run(2, 3)
    assert rates[2][0] == 0
    assert _close(_run(2, 2, (o, s, done), 5)[0], [rates[1], [r / 2 for r in rates[1]]])
