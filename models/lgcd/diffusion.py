"""Conditional diffusion preference generator of LGCD (paper section 3.4, equations 9 to 19).

Reads top-down: pure schedule functions, the closed-form forward process and
the posterior, the cross-attention denoiser, and ``ConditionalDiffusion`` that
owns the losses and the batched reverse process.

Index convention: every schedule tensor has length T + 1 and is indexed by the
diffusion step t in {0, ..., T}; entry 0 is the clean state (beta_0 = 0,
alpha_bar_0 = 1), so equation 19 at t = 1 returns x_hat_0 exactly.

Key/value tokens of the cross-attention. The condition h_cond of one user is a
single vector; with a single key the attention softmax is identically 1, the
query is ignored and "cross-attention" collapses to a linear map of h_cond.
Equation 16 writes the condition as Z_cond, so by default (``cond_tokens =
"cond+modalities"``) the keys and values are the three condition vectors
[h_cond, h_ID, h_text], which lets each head weigh collaborative against
semantic evidence per noise state. ``cond_tokens="cond"`` is the literal
reading (h_cond alone).
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ---------------------------------------------------------------- schedules


def sqrt_linear_betas(T: int, beta_min: float, beta_max: float) -> Tensor:
    """beta_1..beta_T with sqrt(beta_t) uniform in [sqrt(beta_min), sqrt(beta_max)] (sec 3.4.2).

    Interpolating in sqrt space keeps the first steps gentle (little noise
    where structure is still present) while the last steps approach pure noise.
    Returned in float64 so the cumulative products below stay exact.
    """
    return torch.linspace(math.sqrt(beta_min), math.sqrt(beta_max), T, dtype=torch.float64) ** 2


def schedule_tables(betas: Tensor) -> dict[str, Tensor]:
    """All step-indexed quantities (length T + 1, float64) used by eqs 10, 11, 18 and 19."""
    zero, one = betas.new_zeros(1), betas.new_ones(1)
    beta = torch.cat([zero, betas])  # (T+1,)
    alpha = 1.0 - beta  # eq 9
    alpha_bar = torch.cumprod(alpha, 0)  # eq 10, alpha_bar[0] = 1
    alpha_bar_prev = torch.cat([one, alpha_bar[:-1]])
    denom = (1.0 - alpha_bar).clamp_min(1e-20)  # only t = 0 hits the clamp
    coef_x0 = alpha_bar_prev.sqrt() * beta / denom  # eq 19, factor of x_hat_0
    coef_xt = alpha.sqrt() * (1.0 - alpha_bar_prev) / denom  # eq 19, factor of x_t
    var = beta * (1.0 - alpha_bar_prev) / denom  # Sigma_t of eq 18
    coef_x0[0], coef_xt[0], var[0] = 1.0, 0.0, 0.0  # t = 0 is the clean state
    return {"beta": beta, "alpha": alpha, "alpha_bar": alpha_bar, "alpha_bar_prev": alpha_bar_prev,
            "coef_x0": coef_x0, "coef_xt": coef_xt, "posterior_var": var}


class NoiseSchedule(nn.Module):
    """Schedule tables as non-persistent float32 buffers.

    They follow ``.to(device)`` but stay out of checkpoints: the config alone determines them.
    """

    def __init__(self, T: int, beta_min: float, beta_max: float):
        super().__init__()
        self.T = T
        for name, table in schedule_tables(sqrt_linear_betas(T, beta_min, beta_max)).items():
            self.register_buffer(name, table.float(), persistent=False)

    def at(self, name: str, t: Tensor) -> Tensor:
        """Gather a table at steps t (B,) as a column (B, 1) for broadcasting over d."""
        return getattr(self, name)[t].unsqueeze(-1)


def q_sample(s: NoiseSchedule, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (eq 11), for x0 (B, d), t (B,)."""
    ab = s.at("alpha_bar", t)  # (B, 1)
    return ab.sqrt() * x0 + (1.0 - ab).sqrt() * noise


def q_mean_var(s: NoiseSchedule, x0: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and variance of the closed-form marginal q(x_t | x_0) (eq 10)."""
    ab = s.at("alpha_bar", t)
    return ab.sqrt() * x0, (1.0 - ab).expand_as(x0)


def posterior_mean(s: NoiseSchedule, x0_hat: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
    """mu_theta(x_t, t) of eq 19; the reverse process steps down with this mean."""
    return s.at("coef_x0", t) * x0_hat + s.at("coef_xt", t) * x_t


def x0_from_noise(s: NoiseSchedule, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
    """Invert eq 11 for x_0, given a noise estimate (the Figure 5 noise-prediction variant)."""
    ab = s.at("alpha_bar", t)
    return (x_t - (1.0 - ab).sqrt() * eps) / ab.sqrt()


# ---------------------------------------------------------------- denoiser


class TimestepEmbedding(nn.Module):
    """e_t of eq 12: sinusoidal features of t followed by a small MLP."""

    def __init__(self, d: int):
        super().__init__()
        self.d = d
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))

    def forward(self, t: Tensor) -> Tensor:
        half = self.d // 2
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / half)
        angles = t.float().unsqueeze(-1) * freqs  # (B, d/2)
        feats = torch.cat([angles.sin(), angles.cos()], dim=-1)  # (B, 2*(d/2))
        if feats.shape[-1] < self.d:  # odd d
            feats = F.pad(feats, (0, 1))
        return self.mlp(feats)  # (B, d)


class Denoiser(nn.Module):
    """f_theta(x_t, t, Z_cond) of eqs 12 to 16; ``conditioning`` selects the Figure 4 variant.

    cross_attention / cfg / id_only / text_only: x_t~ attends over the condition tokens;
    linear: a linear layer over [x_t~ ⊕ first condition token]; none: self-attention on x_t~.

    The reverse process calls the denoiser t_start times (50 on Food) with the same
    condition tokens and one shared t per call, so ``forward`` is split in three parts
    that ``ConditionalDiffusion.reverse`` can hoist out of its loop: ``time`` (e_t, once
    for all steps), ``keys`` (the key/value projections of Z_cond, once per reverse) and
    ``step``. The attention is computed by hand from ``nn.MultiheadAttention``'s weights
    (one query token against K <= 3 keys, where the fused kernel cost more than the
    arithmetic); the parameters, and so the checkpoints, are those of the module.
    """

    def __init__(self, d: int, n_heads: int, conditioning: str, ffn_mult: int = 4,
                 dropout: float = 0.0):
        super().__init__()
        self.conditioning = conditioning
        self.time = TimestepEmbedding(d)
        if conditioning == "linear":
            self.mix = nn.Linear(2 * d, d)
        else:
            self.attn = nn.MultiheadAttention(d, n_heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d, ffn_mult * d), nn.GELU(),
                                 nn.Linear(ffn_mult * d, d), nn.Dropout(dropout))

    def keys(self, z: Tensor | None) -> tuple[Tensor, Tensor] | Tensor | None:
        """What ``step`` needs of Z_cond (B, K, d), computed once per reverse process.

        Per-head keys and values (B, K, H, d/H) each; the first token for ``linear``; None
        when unconditioned.
        """
        if z is None or self.conditioning == "none":
            return None
        if self.conditioning == "linear":
            return z[:, 0]
        return self._kv(z)

    def _kv(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Key and value projections of tokens (B, K, d) -> two (B, K, H, d/H)."""
        d, h = self.attn.embed_dim, self.attn.num_heads
        w, b = self.attn.in_proj_weight[d:], self.attn.in_proj_bias[d:]
        k, v = F.linear(tokens, w, b).unflatten(-1, (2, h, d // h)).unbind(-3)
        return k, v

    def _attend(self, x: Tensor, kv: tuple[Tensor, Tensor] | None) -> Tensor:
        """Multi-head attention of the single query token x (B, d) over kv -> (B, d) (eq 13)."""
        d, h = self.attn.embed_dim, self.attn.num_heads
        wq, bq = self.attn.in_proj_weight[:d], self.attn.in_proj_bias[:d]
        k, v = self._kv(x.unsqueeze(1)) if kv is None else kv  # None: self-attention on x_t~
        q = F.linear(x, wq, bq).unflatten(-1, (h, d // h))  # (B, H, d/H)
        weights = (torch.einsum("bhe,bkhe->bhk", q, k) * (d // h) ** -0.5).softmax(-1)
        weights = F.dropout(weights, self.attn.dropout, self.training)  # (B, H, K)
        out = torch.einsum("bhk,bkhe->bhe", weights, v).flatten(-2)  # (B, d)
        return self.attn.out_proj(out)

    def step(self, x_t: Tensor, e_t: Tensor, kv) -> Tensor:
        """Eqs 12 to 16 given e_t (B, d) or (1, d) and ``keys(z)``; x_t (B, d) -> (B, d)."""
        x = x_t + e_t  # eq 12
        linear = self.conditioning == "linear"
        x_hat = self.mix(torch.cat([x, kv], dim=-1)) if linear else self._attend(x, kv)  # eq 13
        x1 = x + x_hat  # eq 14
        return x1 + self.ffn(x1)  # eqs 15 and 16

    def forward(self, x_t: Tensor, t: Tensor, z: Tensor | None) -> Tensor:
        """x_t (B, d), t (B,), z (B, K, d) or None -> x_hat_0 (B, d)."""
        if self.conditioning == "linear":
            assert z is not None
        return self.step(x_t, self.time(t), self.keys(z))


def condition_tokens(conditioning: str, cond_tokens: str, h_cond: Tensor, h_id: Tensor,
                     h_text: Tensor) -> Tensor | None:
    """Key/value tokens Z_cond (B, K, d) for a conditioning variant; None means unconditioned."""
    if conditioning == "none":
        return None
    if conditioning == "id_only":
        return h_id.unsqueeze(1)
    if conditioning == "text_only":
        return h_text.unsqueeze(1)
    if conditioning == "linear" or cond_tokens == "cond":
        return h_cond.unsqueeze(1)
    return torch.stack([h_cond, h_id, h_text], dim=1)  # (B, 3, d)


# ---------------------------------------------------------------- diffusion


class ConditionalDiffusion(nn.Module):
    """Schedule + denoiser: the diffusion loss (eq 17) and the batched reverse process (eqs 18-19).

    ``target="x0"`` regresses the clean feature (the paper); ``target="noise"`` is
    Figure 5's Noise-MSE variant, whose x_0 estimate is recovered by inverting eq 11.
    ``conditioning="cfg"`` trains with condition dropout to a learned null token
    and, when ``guidance > 0``, returns (1 + w) f(x, Z) - w f(x, null).
    """

    def __init__(self, d: int, n_heads: int, T: int, beta_min: float, beta_max: float,
                 conditioning: str = "cross_attention", target: str = "x0", ffn_mult: int = 4,
                 dropout: float = 0.0, cfg_drop: float = 0.1):
        super().__init__()
        self.T, self.target, self.conditioning, self.cfg_drop = T, target, conditioning, cfg_drop
        self.schedule = NoiseSchedule(T, beta_min, beta_max)
        self.denoiser = Denoiser(d, n_heads, conditioning, ffn_mult, dropout)
        if conditioning == "cfg":
            self.null = nn.Parameter(torch.zeros(1, 1, d))

    def drop_condition(self, z: Tensor | None, generator: torch.Generator | None = None
                       ) -> Tensor | None:
        """CFG training: swap a row's condition tokens for the null token w.p. cfg_drop."""
        if self.conditioning != "cfg" or z is None or not self.training:
            return z
        drop = torch.rand(z.shape[0], 1, 1, device=z.device, generator=generator) < self.cfg_drop
        return torch.where(drop, self.null.expand_as(z), z)

    def predict_x0(self, x_t: Tensor, t: Tensor, z: Tensor | None, guidance: float = 0.0
                   ) -> Tensor:
        """x_hat_0 = f_theta(x_t, t, Z) (eq 16), whatever the network's training target."""
        kv = self.denoiser.keys(self._guided(z, guidance))
        return self._predict(x_t, t, self.denoiser.time(t), kv, guidance)

    def _guided(self, z: Tensor | None, guidance: float) -> Tensor | None:
        """Z for one call: with CFG guidance, the conditioned and the null tokens stacked (2B)."""
        if self.conditioning == "cfg" and guidance > 0 and z is not None:
            return torch.cat([z, self.null.expand_as(z)])
        return z

    def _predict(self, x_t: Tensor, t: Tensor, e_t: Tensor, kv, guidance: float) -> Tensor:
        """``predict_x0`` given e_t and ``denoiser.keys`` of ``_guided(z)``."""
        if self.conditioning == "cfg" and guidance > 0 and kv is not None:
            e_t = e_t if e_t.shape[0] == 1 else torch.cat([e_t, e_t])
            cond, uncond = self.denoiser.step(torch.cat([x_t, x_t]), e_t, kv).chunk(2)  # (2B, d)
            out = (1.0 + guidance) * cond - guidance * uncond
        else:
            out = self.denoiser.step(x_t, e_t, kv)
        if self.target == "noise":
            return x0_from_noise(self.schedule, x_t, t, out)
        return out

    def training_loss(self, x0: Tensor, z: Tensor | None,
                      generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Per-row L_diff (eq 17, squared L2 norm over d) and the x_0 estimate used as h_init.

        x0 (B, d), z (B, K, d) -> (loss (B,), x0_hat (B, d)); t ~ U{1..T}, eps ~ N(0, I).
        """
        b = x0.shape[0]
        t = torch.randint(1, self.T + 1, (b,), device=x0.device, generator=generator)
        eps = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
        x_t = q_sample(self.schedule, x0, t, eps)
        out = self.denoiser(x_t, t, z)
        if self.target == "noise":
            return (out - eps).pow(2).sum(-1), x0_from_noise(self.schedule, x_t, t, out)
        return (out - x0).pow(2).sum(-1), out

    def reverse(self, h_init: Tensor, z: Tensor | None, t_start: int, noise: Tensor | None = None,
                guidance: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
        """h_rev from h_init (sec 3.4.4): diffuse to t_start, then step down to 0 with eq 19's mean.

        Batched over all users: the only Python loop is over the t_start steps.
        h_init (B, d), z (B, K, d) -> (B, d). ``noise`` (B, d) fixes the forward jump.
        """
        if not 1 <= t_start <= self.T:
            raise ValueError(f"t_start={t_start} outside [1, T={self.T}]")
        if noise is None:
            noise = torch.randn(h_init.shape, device=h_init.device, dtype=h_init.dtype,
                                generator=generator)
        t = torch.full((h_init.shape[0],), t_start, device=h_init.device, dtype=torch.long)
        x = q_sample(self.schedule, h_init, t, noise)  # x_{t_start}, (B, d)
        steps = torch.arange(t_start, 0, -1, device=h_init.device)
        e = self.denoiser.time(steps)  # (t_start, d): e_t of every step, one call
        kv = self.denoiser.keys(self._guided(z, guidance))  # Z_cond's projections, one call
        for i, step in enumerate(range(t_start, 0, -1)):
            t = torch.full_like(t, step)
            x0_hat = self._predict(x, t, e[i:i + 1], kv, guidance)
            x = posterior_mean(self.schedule, x0_hat, x, t)  # x_{t-1}
        return x
