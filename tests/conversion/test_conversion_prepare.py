"""Graph preparation with torch.fx: BN folding, dropout removal, functional activations,
shared modules, unsupported layers."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snn.conversion import ConversionError, QCFS, activation_sites, prepare_ann
from snn.conversion.prepare import maxpool_sites


def _randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.2)
    return model.eval()


class Functional(nn.Module):
    """Functional activations and pooling, a reused ReLU, a residual addition and a concatenation."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(8 * 4 * 4, 5)
        self.bn_fc = nn.BatchNorm1d(5)

    def forward(self, x):
        a = self.relu(self.bn1(self.conv1(x)))
        b = self.relu(self.bn2(self.conv2(a)) + a)       # the same ReLU module, second call site
        c = torch.cat([F.relu(b), a.clamp(min=0)], dim=1)
        c = F.max_pool2d(c, 2)
        c = F.dropout(c, 0.5, self.training)
        return self.bn_fc(self.fc(c.view(c.size(0), -1)))


def test_prepared_graph_computes_the_same_function():
    model = _randomise_bn(Functional())
    x = torch.randn(8, 2, 8, 8)
    gm = prepare_ann(model)
    torch.testing.assert_close(gm(x), model(x), rtol=1e-5, atol=1e-5)
    types = [type(m) for m in gm.modules()]
    assert nn.BatchNorm2d not in types and nn.BatchNorm1d not in types  # all three folded
    sites = activation_sites(gm)
    assert len(sites) == 4 and all(isinstance(m, nn.ReLU) for m in sites.values())
    assert len(set(map(id, sites.values()))) == 4  # the reused ReLU got its own copy
    assert list(sites)[:2] == ["relu", "relu_1"]
    assert len(maxpool_sites(gm)) == 1


def test_user_model_is_not_modified():
    model = _randomise_bn(Functional())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prepare_ann(model)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert isinstance(model.bn1, nn.BatchNorm2d)


def test_dropout_and_identity_removed_bn_without_conv_kept():
    model = _randomise_bn(nn.Sequential(nn.BatchNorm1d(6), nn.Linear(6, 6), nn.Dropout(0.5), nn.Identity(),
                                        nn.ReLU(), nn.Linear(6, 3)))
    gm = prepare_ann(model)
    kinds = [type(m) for _, m in gm.named_children()]
    assert nn.Dropout not in kinds and nn.Identity not in kinds
    assert nn.BatchNorm1d in kinds  # an input BN is a per-feature affine map, kept
    x = torch.randn(5, 6)
    torch.testing.assert_close(gm(x), model(x))


def test_max_pool_avg_mode_replaces_pooling():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    gm = prepare_ann(model, max_pool="avg")
    assert not maxpool_sites(gm) and any(isinstance(m, nn.AvgPool2d) for m in gm.modules())
    with pytest.raises(ValueError, match="max_pool"):
        prepare_ann(model, max_pool="median")


@pytest.mark.parametrize("layer", [nn.Sigmoid(), nn.LeakyReLU(), nn.GELU(), nn.LayerNorm(4)])
def test_unsupported_module_is_named(layer):
    model = nn.Sequential(nn.Linear(4, 4), layer, nn.Linear(4, 2))
    with pytest.raises(ConversionError) as e:
        prepare_ann(model)
    msg = str(e.value)
    assert f"'1' ({type(layer).__name__})" in msg and "Supported:" in msg and "ReLU" in msg


def test_unsupported_function_and_hardtanh_range():
    class Tanh(nn.Module):
        def forward(self, x):
            return torch.tanh(x) * x

    with pytest.raises(ConversionError, match="tanh"):
        prepare_ann(Tanh())
    with pytest.raises(ConversionError, match="Hardtanh"):
        prepare_ann(nn.Sequential(nn.Linear(2, 2), nn.Hardtanh(-1, 1)))
    assert len(activation_sites(prepare_ann(nn.Sequential(nn.Linear(2, 2), nn.Hardtanh(0, 2))))) == 1


def test_untraceable_and_multi_input_models_rejected():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    class TwoInputs(nn.Module):
        def forward(self, x, y):
            return x + y

    with pytest.raises(ConversionError, match="could not trace"):
        prepare_ann(Branchy())
    with pytest.raises(ConversionError, match="exactly one input"):
        prepare_ann(TwoInputs())
    with pytest.raises(ConversionError, match="running statistics"):
        prepare_ann(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2, track_running_stats=False), nn.ReLU()))
    with pytest.raises(TypeError, match="nn.Module"):
        prepare_ann(lambda x: x)


def test_qcfs_stays_a_leaf():
    model = nn.Sequential(nn.Linear(3, 3), QCFS(levels=2, clip=1.0), nn.Linear(3, 1))
    sites = activation_sites(prepare_ann(model))
    assert list(sites) == ["1"] and isinstance(sites["1"], QCFS)


class _Normalised(nn.Module):
    """Input normalisation by buffers, ``(x − mean) / std``, and a per-channel learned scale
    (a parameter) after the activation: element-wise affine maps by constants."""

    def __init__(self, act=nn.ReLU) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.4, 0.6]))
        self.register_buffer("std", torch.tensor([0.25, 0.5]).view(1, 2, 1, 1))
        self.gamma = nn.Parameter(torch.tensor([1.5, 0.5, 2.0, 1.0]).view(1, 4, 1, 1))
        self.conv, self.act, self.fc = nn.Conv2d(2, 4, 3), act(), nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        x = (x - self.mean.view(1, -1, 1, 1)) / self.std
        h = self.act(self.conv(x)).mul(self.gamma) * 0.5
        return self.fc(h.flatten(1))


def test_multiplication_and_division_by_constant_tensors_are_accepted():
    model = _Normalised().eval()
    x = torch.rand(8, 2, 6, 6)
    gm = prepare_ann(model)
    torch.testing.assert_close(gm(x), model(x))


def test_constant_tensor_scaling_converts_exactly():
    """With a QCFS activation the converted network equals the ANN at T = L (Bu et al. 2022), so
    any error would come from how the constant scalings act on the time-merged batch."""
    import snn
    from snn.encoders import direct
    torch.manual_seed(0)
    model = _Normalised(lambda: QCFS(levels=4, clip=1.0)).eval()
    net = snn.convert(model, None, backend="torch")
    x = torch.rand(16, 2, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(net(direct(x, 4))[-1] / 4, model(x), rtol=0, atol=1e-5)


def test_non_affine_products_and_quotients_are_rejected():
    class Inverse(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("c", torch.tensor(2.0))

        def forward(self, x):
            return self.c / x

    class Square(nn.Module):
        def forward(self, x):
            return x * x

    class Floor(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("c", torch.tensor(2.0))

        def forward(self, x):
            return torch.div(x, self.c, rounding_mode="floor")

    class ScalarOverX(nn.Module):
        def forward(self, x):
            return 1.0 / x

    for model, name in ((Inverse(), "div"), (Square(), "mul"), (Floor(), "div"), (ScalarOverX(), "truediv")):
        with pytest.raises(ConversionError, match=name):
            prepare_ann(model)
