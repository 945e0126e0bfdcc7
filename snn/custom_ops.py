"""A fused kernel as a PyTorch custom operator that eager calls reach without the dispatcher.

``torch.compile`` needs the fused kernels (:mod:`snn.cuda.autograd`, :mod:`snn.delays.autograd`)
as custom operators: opaque nodes with fake-tensor shapes and an autograd formula. The
operator dispatcher costs about 0.1 ms per call, as much as a small layer's kernels, so eager
calls run the same implementation and formula through a plain ``torch.autograd.Function``
instead. ``ctx.eager`` tells the formula's backward which path it is on (the backward
operator for traced code, its implementation otherwise).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

__all__ = ["eager_twin", "call"]


def eager_twin(op: Any, impl: Callable, setup_context: Callable, backward: Callable, name: str,
               doc: str) -> type[torch.autograd.Function]:
    """Register ``setup_context``/``backward`` as ``op``'s autograd formula and return an
    ``autograd.Function`` class ``name`` (the profiler's label) that runs ``impl`` with that
    formula, without the dispatcher. ``setup_context(ctx, inputs, output)`` as for
    ``register_autograd``; in ``backward(ctx, *grads)``, ``ctx.eager`` is True on the eager path."""
    def traced_setup(ctx, inputs, output) -> None:
        setup_context(ctx, inputs, output)
        ctx.eager = False

    op.register_autograd(backward, setup_context=traced_setup)

    def forward(ctx, *args):
        # forward(ctx, ...) rather than a separate setup_context: apply() then skips binding
        # the arguments with inspect.signature, which alone costs ~0.05 ms per call
        out = impl(*args)
        setup_context(ctx, args, out)
        ctx.eager = True
        return out

    def eager_backward(ctx, *grads):
        return backward(ctx, *grads)

    return type(name, (torch.autograd.Function,), {
        "__doc__": doc, "__module__": impl.__module__, "forward": staticmethod(forward),
        "backward": staticmethod(torch.autograd.function.once_differentiable(eager_backward))})


def call(op: Any, function: type[torch.autograd.Function], first: Tensor, *args: Any) -> Any:
    """``op(first, *args)`` for tracers (code being compiled, or ``make_fx``/``opcheck``, whose
    tensors are subclasses), else ``function.apply(first, *args)``."""
    traced = torch.compiler.is_compiling() or type(first) is not Tensor
    return (op if traced else function.apply)(first, *args)
