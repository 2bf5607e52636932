import math

import pytest
import torch

from models.lgcd.config import CONDITIONINGS
from models.lgcd.diffusion import (
    ConditionalDiffusion,
    NoiseSchedule,
    condition_tokens,
    posterior_mean,
    q_mean_var,
    q_sample,
    sqrt_linear_betas,
    x0_from_noise,
)

T = 100


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def sched() -> NoiseSchedule:
    return NoiseSchedule(T, 0.001, 0.1)


def test_betas_are_linear_in_sqrt_space():
    betas = sqrt_linear_betas(T, 0.001, 0.1)
    assert betas.shape == (T,)
    assert betas[0].item() == pytest.approx(0.001, rel=1e-12)
    assert betas[-1].item() == pytest.approx(0.1, rel=1e-12)
    steps = betas.sqrt().diff()
    torch.testing.assert_close(steps, torch.full_like(steps, steps[0].item()), rtol=1e-9, atol=0)
    assert bool((betas.diff() > 0).all())


def test_alpha_bar_is_product_of_alphas(sched):
    betas = sqrt_linear_betas(T, 0.001, 0.1)
    for t in (1, 17, 50, 100):
        expected = math.prod(1.0 - b for b in betas[:t].tolist())
        assert sched.alpha_bar[t].item() == pytest.approx(expected, rel=1e-6)
    assert sched.alpha_bar[0].item() == 1.0


@pytest.mark.parametrize("t", [1, 10, 50, 100])
def test_q_sample_statistics_match_closed_form(sched, t):
    """Empirical mean/variance of x_t from eq 11 against eq 10, and against iterating eq 9."""
    gen = torch.Generator().manual_seed(t)
    n, d = 200_000, 3
    x0 = torch.tensor([[1.5, -2.0, 0.25]]).expand(n, d)
    tt = torch.full((n,), t, dtype=torch.long)
    x_t = q_sample(sched, x0, tt, torch.randn(n, d, generator=gen))
    mean, var = q_mean_var(sched, x0[:1], tt[:1])
    torch.testing.assert_close(x_t.mean(0), mean[0], atol=0.01, rtol=0)
    torch.testing.assert_close(x_t.var(0), var[0], atol=0.01, rtol=0.02)
    # the Markov chain of eq 9, step by step, reaches the same marginal
    x = x0.clone()
    for step in range(1, t + 1):
        beta = sched.beta[step]
        x = (1 - beta).sqrt() * x + beta.sqrt() * torch.randn(n, d, generator=gen)
    torch.testing.assert_close(x.mean(0), mean[0], atol=0.01, rtol=0)
    torch.testing.assert_close(x.var(0), var[0], atol=0.01, rtol=0.02)


def test_posterior_mean_matches_equation_19(sched):
    betas = sqrt_linear_betas(T, 0.001, 0.1).tolist()
    gen = torch.Generator().manual_seed(0)
    x0_hat, x_t = torch.randn(4, 5, generator=gen), torch.randn(4, 5, generator=gen)
    for t in (1, 2, 30, 100):
        ab_t = math.prod(1 - b for b in betas[:t])
        ab_prev = math.prod(1 - b for b in betas[: t - 1])
        beta_t, alpha_t = betas[t - 1], 1 - betas[t - 1]
        direct = (math.sqrt(ab_prev) * beta_t / (1 - ab_t) * x0_hat
                  + math.sqrt(alpha_t) * (1 - ab_prev) / (1 - ab_t) * x_t)
        got = posterior_mean(sched, x0_hat, x_t, torch.full((4,), t))
        torch.testing.assert_close(got, direct, atol=1e-5, rtol=1e-5)


def test_posterior_mean_is_the_gaussian_posterior(sched):
    """Eq 19 equals the mean of q(x_{t-1} | x_t, x_0) derived from eqs 9 and 10 by Bayes."""
    gen = torch.Generator().manual_seed(1)
    x0, x_t = torch.randn(3, 4, generator=gen), torch.randn(3, 4, generator=gen)
    for t in (2, 40, 99):
        beta, ab_prev = sched.beta[t].double(), sched.alpha_bar[t - 1].double()
        precision = (1 - beta) / beta + 1 / (1 - ab_prev)
        mean = ((1 - beta).sqrt() / beta * x_t.double()
                + ab_prev.sqrt() / (1 - ab_prev) * x0.double())
        expected = (mean / precision).float()
        got = posterior_mean(sched, x0, x_t, torch.full((3,), t))
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
        assert sched.posterior_var[t].item() == pytest.approx(1 / precision.item(), rel=1e-4)


def test_last_reverse_step_returns_x0_hat(sched):
    x0_hat, x_t = torch.randn(2, 3), torch.randn(2, 3)
    torch.testing.assert_close(posterior_mean(sched, x0_hat, x_t, torch.ones(2, dtype=torch.long)),
                               x0_hat)


def test_noise_inversion_recovers_x0(sched):
    x0, eps = torch.randn(5, 4), torch.randn(5, 4)
    t = torch.tensor([1, 5, 20, 60, 100])
    torch.testing.assert_close(x0_from_noise(sched, q_sample(sched, x0, t, eps), t, eps), x0,
                               atol=1e-4, rtol=1e-4)


def _tokens(conditioning: str, b: int, d: int, gen: torch.Generator):
    h_cond, h_id, h_text = (torch.randn(b, d, generator=gen) for _ in range(3))
    return condition_tokens(conditioning, "cond+modalities", h_cond, h_id, h_text)


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
@pytest.mark.parametrize("target", ["x0", "noise"])
def test_batched_reverse_equals_per_user_loop(conditioning, target):
    torch.manual_seed(0)
    d, b = 8, 6
    model = ConditionalDiffusion(d, 4, 20, 0.001, 0.1, conditioning, target).eval()
    gen = torch.Generator().manual_seed(2)
    h_init, noise = torch.randn(b, d, generator=gen), torch.randn(b, d, generator=gen)
    z = _tokens(conditioning, b, d, gen)
    with torch.no_grad():
        batched = model.reverse(h_init, z, 10, noise=noise, guidance=1.5)
        looped = torch.cat([
            model.reverse(h_init[i:i + 1], None if z is None else z[i:i + 1], 10,
                          noise=noise[i:i + 1], guidance=1.5) for i in range(b)])
    torch.testing.assert_close(batched, looped, atol=1e-5, rtol=1e-5)


def test_reverse_depends_on_condition_unless_unconditioned():
    torch.manual_seed(0)
    d, b = 8, 4
    gen = torch.Generator().manual_seed(3)
    h_init, noise = torch.randn(b, d, generator=gen), torch.randn(b, d, generator=gen)
    for conditioning, should_change in (("cross_attention", True), ("none", False)):
        model = ConditionalDiffusion(d, 4, 10, 0.001, 0.1, conditioning).eval()
        z1 = _tokens("cross_attention", b, d, gen)
        z2 = z1 + 1.0
        with torch.no_grad():
            out1 = model.reverse(h_init, z1 if conditioning != "none" else None, 5, noise=noise)
            out2 = model.reverse(h_init, z2 if conditioning != "none" else None, 5, noise=noise)
        assert (not torch.allclose(out1, out2)) == should_change


def test_training_loss_regresses_x0_and_learns():
    """L_diff is the squared error to x_0 (eq 17), and a few steps reduce it."""
    torch.manual_seed(0)
    d = 8
    model = ConditionalDiffusion(d, 4, 10, 0.001, 0.1)
    x0 = torch.randn(32, d)
    z = x0.unsqueeze(1) * 0.5
    loss, x0_hat = model.training_loss(x0, z)
    torch.testing.assert_close(loss, (x0_hat - x0).pow(2).sum(-1))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = float(loss.detach().mean())
    for _ in range(150):
        loss, _ = model.training_loss(x0, z)
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
    assert float(loss.detach().mean()) < 0.5 * first


def test_cfg_drops_condition_only_in_training():
    torch.manual_seed(0)
    model = ConditionalDiffusion(8, 4, 10, 0.001, 0.1, "cfg", cfg_drop=0.5)
    z = torch.randn(400, 3, 8)
    dropped = model.drop_condition(z)
    is_null = (dropped == 0).all(-1).all(-1)  # the null token starts at zero
    assert 120 < int(is_null.sum()) < 280
    torch.testing.assert_close(dropped[~is_null], z[~is_null])
    model.eval()
    assert model.drop_condition(z) is z


def test_reverse_rejects_bad_start():
    model = ConditionalDiffusion(8, 4, 10, 0.001, 0.1)
    with pytest.raises(ValueError, match="t_start"):
        model.reverse(torch.zeros(1, 8), torch.zeros(1, 1, 8), 11)


def _reference_denoiser(den, x_t, t, z):
    """Eqs 12-16 through nn.MultiheadAttention's own forward (what ``Denoiser._attend`` replaces)."""
    x = x_t + den.time(t)
    q = x.unsqueeze(1)
    if den.conditioning == "linear":
        x_hat = den.mix(torch.cat([x, z[:, 0]], dim=-1))
    elif den.conditioning == "none" or z is None:
        x_hat = den.attn(q, q, q, need_weights=False)[0].squeeze(1)
    else:
        x_hat = den.attn(q, z, z, need_weights=False)[0].squeeze(1)
    x1 = x + x_hat
    return x1 + den.ffn(x1)


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_denoiser_equals_multihead_attention_reference(conditioning):
    """The hand-written single-query attention is nn.MultiheadAttention's, values and grads."""
    torch.manual_seed(0)
    d, b = 16, 7
    model = ConditionalDiffusion(d, 4, 20, 0.001, 0.1, conditioning)
    gen = torch.Generator().manual_seed(5)
    x_t, t = torch.randn(b, d, generator=gen), torch.randint(1, 21, (b,), generator=gen)
    z = _tokens(conditioning, b, d, gen)
    ours = model.denoiser(x_t, t, z)
    ref = _reference_denoiser(model.denoiser, x_t, t, z)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    params = list(model.denoiser.parameters())
    g_ours = torch.autograd.grad(ours.square().sum(), params, allow_unused=True)
    g_ref = torch.autograd.grad(ref.square().sum(), params, allow_unused=True)
    for a, r in zip(g_ours, g_ref, strict=True):
        assert (a is None) == (r is None)
        if a is not None:
            torch.testing.assert_close(a, r, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("conditioning", ["cross_attention", "cfg", "linear", "none"])
def test_reverse_with_hoisted_keys_equals_stepwise_predictions(conditioning):
    """reverse() computes e_t and the condition's keys once; each step is still eq 19 over
    predict_x0, and gradients reach the denoiser the same way."""
    torch.manual_seed(0)
    d, b, t_start = 8, 5, 12
    model = ConditionalDiffusion(d, 4, 20, 0.001, 0.1, conditioning)
    gen = torch.Generator().manual_seed(4)
    h_init, noise = torch.randn(b, d, generator=gen), torch.randn(b, d, generator=gen)
    z = _tokens(conditioning, b, d, gen)
    ours = model.reverse(h_init, z, t_start, noise=noise, guidance=1.0)
    t = torch.full((b,), t_start, dtype=torch.long)
    x = q_sample(model.schedule, h_init, t, noise)
    for step in range(t_start, 0, -1):
        t = torch.full_like(t, step)
        x = posterior_mean(model.schedule, model.predict_x0(x, t, z, 1.0), x, t)
    torch.testing.assert_close(ours, x, atol=1e-5, rtol=1e-5)
    params = list(model.parameters())
    g_ours = torch.autograd.grad(ours.sum(), params, allow_unused=True)
    g_ref = torch.autograd.grad(x.sum(), params, allow_unused=True)
    for a, r in zip(g_ours, g_ref, strict=True):
        if a is not None:
            torch.testing.assert_close(a, r, atol=1e-4, rtol=1e-4)
