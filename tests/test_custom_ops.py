"""snn/custom_ops.py: an operator and its eager twin share one implementation and formula."""
import torch

from snn.custom_ops import call, eager_twin

PATHS: list[bool] = []  # ctx.eager seen by each backward


def _impl(x: torch.Tensor, k: float) -> torch.Tensor:
    return x * k


_op = torch.library.custom_op("snn_test::scale", _impl, mutates_args=())
_op.register_fake(lambda x, k: torch.empty_like(x))


def _setup(ctx, inputs, output):
    ctx.k = inputs[1]


def _backward(ctx, g):
    PATHS.append(ctx.eager)
    return g * ctx.k, None


Scale = eager_twin(_op, _impl, _setup, _backward, "Scale", "x·k")


def test_eager_calls_take_the_function_and_traced_calls_the_operator():
    assert Scale.__name__ == "Scale" and issubclass(Scale, torch.autograd.Function)
    PATHS.clear()
    x = torch.rand(4, requires_grad=True)
    call(_op, Scale, x, 3.0).sum().backward()
    assert PATHS == [True] and torch.equal(x.grad, torch.full((4,), 3.0))
    x.grad = None
    fn = torch.compile(lambda x: call(_op, Scale, x, 3.0), fullgraph=True, backend="aot_eager")
    y = fn(x)
    y.sum().backward()
    assert PATHS == [True, False] and torch.equal(x.grad, torch.full((4,), 3.0))
    assert torch.equal(y, x.detach() * 3.0)
