"""Graphs exported by other libraries import into snn with the same outputs."""
import pytest
import torch

pytest.importorskip("nir")
from snn.nir import from_nir  # noqa: E402


def test_norse_lifbox_graph_matches_norse():
    norse = pytest.importorskip("norse.torch")
    torch.manual_seed(0)
    p = norse.LIFBoxParameters(tau_mem_inv=torch.tensor(0.4), v_th=torch.tensor(0.8))
    lin = torch.nn.Linear(6, 4)
    cell = norse.LIFBoxCell(p, dt=1.0)
    model = norse.SequentialState(lin, cell)
    x = torch.rand(20, 3, 6) * 8
    ref, state, outs = None, None, []
    for x_t in x:                                   # norse steps one timestep at a time
        out, state = model(x_t, state)
        outs.append(out)
    ref = torch.stack(outs)
    # Norse writes tau = dt / tau_mem_inv; with dt = 1 that is the NIR time constant 1 / tau_mem_inv
    graph = norse.to_nir(model, torch.rand(1, 6), dt=1.0)
    ours = from_nir(graph, dt=1.0)
    with torch.no_grad():
        got = ours(x)
    assert ref.sum() > 0 and torch.equal(got, ref)
    assert ours[1].decay_input and ours[1].beta.item() == pytest.approx(0.6)
