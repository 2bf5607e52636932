import pytest
import torch

from models.lgcd.moe import LinearFusion, MoEFusion, build_fusion


@pytest.fixture
def moe() -> MoEFusion:
    torch.manual_seed(0)
    return MoEFusion(d=8, n_experts=8)


def test_gate_weights_are_a_distribution(moe):
    alpha = moe.gate_weights(torch.randn(16, 8) * 5)
    assert alpha.shape == (16, 8)
    assert bool((alpha >= 0).all())
    torch.testing.assert_close(alpha.sum(-1), torch.ones(16))


def test_gate_ignores_h_rev(moe):
    """The gate inside forward sees h_cond only: changing h_rev leaves its weights unchanged."""
    seen = []
    moe.gate.register_forward_hook(lambda _m, _inp, out: seen.append(torch.softmax(out, -1)))
    h_cond = torch.randn(4, 8)
    out1 = moe(h_cond, torch.randn(4, 8))
    out2 = moe(h_cond, torch.randn(4, 8) * 10)
    torch.testing.assert_close(seen[0], seen[1], rtol=0, atol=0)
    torch.testing.assert_close(seen[0], moe.gate_weights(h_cond))
    assert not torch.allclose(out1, out2)  # the experts do read h_rev
    moe(h_cond + 1.0, torch.randn(4, 8))
    assert not torch.allclose(seen[0], seen[-1])  # ...and the gate reads h_cond


def test_forward_is_weighted_sum_of_linear_experts(moe):
    """Eq 24 computed expert by expert equals the fused one-matmul implementation."""
    h_cond, h_rev = torch.randn(3, 8), torch.randn(3, 8)
    x = torch.cat([h_cond, h_rev], -1)
    alpha = moe.gate_weights(h_cond)
    w, b = moe.experts.weight.view(8, 8, 16), moe.experts.bias.view(8, 8)
    expected = sum(alpha[:, n:n + 1] * (x @ w[n].T + b[n]) for n in range(8))
    torch.testing.assert_close(moe(h_cond, h_rev), expected, atol=1e-5, rtol=1e-5)


def test_build_fusion():
    assert isinstance(build_fusion("moe", 8, 3), MoEFusion)
    lin = build_fusion("linear", 8, 3)
    assert isinstance(lin, LinearFusion)
    assert lin(torch.randn(2, 8), torch.randn(2, 8)).shape == (2, 8)
    with pytest.raises(ValueError, match="fusion"):
        build_fusion("mlp", 8, 3)
