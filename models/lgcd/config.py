"""Typed configuration of the LGCD model, its training, and every ablation of the paper.

Defaults follow section 4.1.3 of the paper (d = 64, Adam at 1e-3, batches of 128
pseudo/single-domain users plus 64 real overlapping users, beta in
[0.001, 0.1], T = 100, 4 attention heads, 8 experts, nK = 10). lambda is given
per *target* domain: the Food-Kitchen defaults are 0.5 when Food (A) is the
target and 0.3 when Kitchen (B) is the target (the paper uses 0.7 for
Movie-Book).

Every row of Table 3 and every bar of Figures 4 and 5 is a named preset in
``VARIANTS`` so that an ablation is a configuration, not a code path to edit:
``LGCDConfig.variant("wo_diffusion")``.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Conditioning = Literal["cross_attention", "linear", "cfg", "id_only", "text_only", "none"]
CONDITIONINGS: tuple[str, ...] = ("cross_attention", "linear", "cfg", "id_only", "text_only",
                                  "none")
Target = Literal["x0", "noise"]
Fusion = Literal["moe", "linear"]
CondTokens = Literal["cond", "cond+modalities"]
SqReduce = Literal["sum", "mean"]
EpochUnit = Literal["overlap", "pseudo"]
TrainStart = Literal["guesser", "x0_hat"]
OverlapTargets = Literal["last", "every"]
EarlyStopping = Literal["joint", "per_direction"]


def _fail(msg: str) -> ValueError:
    return ValueError(f"LGCDConfig: {msg}")


@dataclass(frozen=True)
class LGCDConfig:
    # --- sizes (section 4.1.3)
    d: int = 64  # hidden size: the domain encoders' output size (set by encoder.d)
    n_heads: int = 4  # heads of the denoiser's cross-attention
    ffn_mult: int = 4  # denoiser feed-forward width = ffn_mult * d
    dropout: float = 0.0  # dropout inside the denoiser (the paper states none)
    max_len: int = 50  # most recent items kept per sequence part

    # --- diffusion (sections 3.4.2 to 3.4.4)
    T: int = 100  # diffusion steps
    beta_min: float = 0.001  # sqrt(beta) is linear in [sqrt(beta_min), sqrt(beta_max)]
    beta_max: float = 0.1
    lam: dict[str, float] = field(default_factory=lambda: {"A": 0.5, "B": 0.3})  # t_start = lam*T
    target: Target = "x0"  # Figure 5: "x0" regresses h_tgt (paper), "noise" is Noise-MSE
    conditioning: Conditioning = "cross_attention"  # Figure 4 variants
    cond_tokens: CondTokens = "cond+modalities"  # key/value tokens, see models/lgcd/diffusion.py
    cfg_drop: float = 0.1  # conditioning="cfg": probability of dropping the condition
    cfg_weight: float = 1.0  # conditioning="cfg": guidance weight w at inference

    # --- fusion (section 3.5)
    fusion: Fusion = "moe"  # "linear" is the w/o MoE ablation
    n_experts: int = 8

    # --- Table 3 switches
    use_diffusion: bool = True  # False: h_final = h_cond, only L_rec (w/o Diffusion)
    diffuse_overlap: bool = True  # False: no L_diff from real overlap users
    diffuse_pseudo: bool = True  # False: no L_diff / L_align from pseudo users
    use_align: bool = True  # L_align on pseudo users (eq 20)
    use_guesser: bool = True  # False: random start at inference, no L_guess
    overlap_cyclic: bool = True  # False: overlap users shuffled into the 128 stream once

    # --- training path: what a training row sees, so that it matches a test row
    epoch_unit: EpochUnit = "overlap"  # an epoch passes over the real overlap users | "pseudo"
    train_start: TrainStart = "guesser"  # h_init in training: g(h_cond) as at test | "x0_hat"
    cross_id: bool = False  # overlap rows' h_ID also reads their real target IDs (W_x)
    item_bias: bool = False  # learned per-item bias b_i on the target logits (eq 25)
    # learned residual added to the frozen target table E_fusion, per target domain (a bool: both)
    item_residual: dict[str, bool] = field(default_factory=lambda: {"A": False, "B": False})
    source_adapter: bool = False  # learned source-item embeddings, recency-pooled, added to h_ID
    finetune_condition: bool = False  # each path trains its own copy of the source encoder
    pseudo_weight: float | None = None  # loss share of the pseudo stream; None: its row share
    # overlap users' L_rec targets per target domain: last item | "every" (a string: both)
    overlap_targets: dict[str, OverlapTargets] = field(
        default_factory=lambda: {"A": "last", "B": "last"})

    # --- losses (equations 26 and 27)
    w_diff: float = 1.0
    w_guess: float = 1.0
    w_align: float = 1.0
    w_rec: float = 1.0
    sq_reduce: SqReduce = "sum"  # squared norms of eqs 17/20/21: "sum" over d (as written) | "mean"
    detach_target: bool = True  # stop-gradient on h_tgt so L_diff cannot collapse it
    finetune_encoders: bool = False  # False: pre-trained encoders frozen (in eval mode)

    # --- data and optimisation (section 4.1.3)
    # nK: pseudo items per pseudo-overlap user that training keeps (the best-ranked of those
    # the grounding stage retrieves; it retrieves the largest nK of any model once)
    n_k: int = 10
    batch_size: int = 128  # pseudo / single-domain users per step
    overlap_batch_size: int = 64  # real overlapping users per step (cyclic iterator)
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # max grad norm; 0 disables
    epochs: int = 50
    patience: int = 5  # early stopping on validation NDCG@10
    early_stopping: EarlyStopping = "joint"  # one best epoch for both paths | one per direction
    seed: int = 0

    def __post_init__(self) -> None:
        self._per_target_domain()
        self._check_sizes_and_schedule()
        self._check_model_choices()
        self._check_losses()
        self._check_training()

    def _per_target_domain(self) -> None:
        """One value for both target domains becomes a mapping {"A": v, "B": v}."""
        for name, kind in (("item_residual", bool), ("overlap_targets", str)):
            value = getattr(self, name)
            if isinstance(value, kind):  # one value for both target domains
                object.__setattr__(self, name, {"A": value, "B": value})
            elif not isinstance(value, dict) or set(value) != {"A", "B"}:
                raise _fail(f"{name}={value!r}; give one value or a mapping of the target "
                            "domains 'A' and 'B'")
        if not all(isinstance(v, bool) for v in self.item_residual.values()):
            raise _fail(f"item_residual={self.item_residual!r}; values must be true or false")

    def _check_sizes_and_schedule(self) -> None:
        if self.d <= 0 or self.n_heads <= 0 or self.d % self.n_heads:
            raise _fail(f"d={self.d} must be a positive multiple of n_heads={self.n_heads}")
        if self.ffn_mult < 1 or self.max_len < 1:
            raise _fail(f"ffn_mult={self.ffn_mult} and max_len={self.max_len} must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise _fail(f"dropout={self.dropout}; allowed [0, 1)")
        if self.T < 1:
            raise _fail(f"T={self.T}; must be >= 1")
        if not 0.0 < self.beta_min < self.beta_max < 1.0:
            raise _fail(f"need 0 < beta_min ({self.beta_min}) < beta_max ({self.beta_max}) < 1")
        if set(self.lam) != {"A", "B"}:
            raise _fail(f"lam must map the target domains 'A' and 'B', got {sorted(self.lam)}")
        for dom, value in self.lam.items():
            if not 0.0 < value <= 1.0:
                raise _fail(f"lam[{dom!r}]={value}; allowed (0, 1]")

    def _check_model_choices(self) -> None:
        choices = {"target": ("x0", "noise"), "conditioning": CONDITIONINGS,
                   "cond_tokens": ("cond", "cond+modalities"), "fusion": ("moe", "linear"),
                   "sq_reduce": ("sum", "mean")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise _fail(f"{name}={getattr(self, name)!r}; allowed {list(allowed)}")
        if self.conditioning == "cfg" and not 0.0 < self.cfg_drop < 1.0:
            raise _fail(f"cfg_drop={self.cfg_drop}; classifier-free guidance needs (0, 1)")
        if self.cfg_weight < 0:
            raise _fail(f"cfg_weight={self.cfg_weight}; must be >= 0")
        if self.n_experts < 1:
            raise _fail(f"n_experts={self.n_experts}; must be >= 1")
        if self.use_diffusion and not (self.diffuse_overlap or self.diffuse_pseudo):
            raise _fail("diffuse_overlap and diffuse_pseudo are both off; "
                        "use use_diffusion=False (the w/o Diffusion ablation) instead")

    def _check_losses(self) -> None:
        for name in ("w_diff", "w_guess", "w_align", "w_rec", "weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise _fail(f"{name}={getattr(self, name)}; must be >= 0")
        if not any(self.loss_weights()[n] > 0 for n in self.active_losses()):
            raise _fail(f"every active loss term ({', '.join(self.active_losses())}) has weight 0 "
                        f"(w_{', w_'.join(self.active_losses())}); nothing would train")
        if self.pseudo_weight is not None and not 0.0 <= self.pseudo_weight <= 1.0:
            raise _fail(f"pseudo_weight={self.pseudo_weight}; allowed [0, 1] or null (row share)")

    def _check_training(self) -> None:
        choices = {"epoch_unit": ("overlap", "pseudo"), "train_start": ("guesser", "x0_hat"),
                   "early_stopping": ("joint", "per_direction")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise _fail(f"{name}={getattr(self, name)!r}; allowed {list(allowed)}")
        for dom, value in self.overlap_targets.items():
            if value not in ("last", "every"):
                raise _fail(f"overlap_targets[{dom!r}]={value!r}; allowed ['last', 'every']")
        if self.early_stopping == "per_direction" and self.finetune_encoders:
            raise _fail("early_stopping='per_direction' needs frozen encoders: with "
                        "finetune_encoders=true both directions train them, so one direction's "
                        "best epoch is not the other's")
        for name in ("batch_size", "overlap_batch_size", "epochs", "patience"):
            if getattr(self, name) < 1:
                raise _fail(f"{name}={getattr(self, name)}; must be >= 1")
        if not 1 <= self.n_k <= 200:  # grounding retrieves the largest nK of any model
            raise _fail(f"n_k={self.n_k}; allowed [1, 200]")
        if self.lr <= 0:
            raise _fail(f"lr={self.lr}; must be > 0")

    def loss_weights(self) -> dict[str, float]:
        return {"diff": self.w_diff, "guess": self.w_guess, "align": self.w_align,
                "rec": self.w_rec}

    def active_losses(self) -> tuple[str, ...]:
        """Loss terms this configuration computes (an ablation switches some off)."""
        if not self.use_diffusion:
            return ("rec",)
        names = ["diff"] + (["guess"] if self.use_guesser else [])
        if self.use_align and self.diffuse_pseudo:
            names.append("align")
        return (*names, "rec")

    def t_start(self, target_domain: str) -> int:
        """Reverse-process start step t_start = lambda * T (section 3.4.4), at least 1."""
        return max(1, round(self.lam[target_domain] * self.T))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "LGCDConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(
                f"LGCDConfig: unknown fields {sorted(unknown)}; allowed {sorted(known)}")
        return cls(**values)

    @classmethod
    def variant(cls, name: str, **overrides: Any) -> "LGCDConfig":
        """Build the named ablation or variant of ``VARIANTS``, with extra field overrides."""
        if name not in VARIANTS:
            raise ValueError(f"unknown LGCD variant {name!r}; allowed {sorted(VARIANTS)}")
        return cls(**{**VARIANTS[name], **overrides})


# Table 3 (ablations), Figure 4 (conditioning) and Figure 5 (training target).
ABLATIONS: dict[str, dict[str, Any]] = {
    "full": {},
    "wo_diffusion": {"use_diffusion": False},
    "wo_overlap_diffusion": {"diffuse_overlap": False},
    "wo_pseudo_diffusion": {"diffuse_pseudo": False},
    "wo_alignment": {"use_align": False},
    "wo_guesser": {"use_guesser": False},
    "wo_moe": {"fusion": "linear"},
    "wo_overlap_cyclic": {"overlap_cyclic": False},
}
CONDITIONING_VARIANTS: dict[str, dict[str, Any]] = {
    f"cond_{name}": {"conditioning": name} for name in CONDITIONINGS
}
TARGET_VARIANTS: dict[str, dict[str, Any]] = {"target_x0": {"target": "x0"},
                                              "target_noise_mse": {"target": "noise"}}
VARIANTS: dict[str, dict[str, Any]] = {**ABLATIONS, **CONDITIONING_VARIANTS, **TARGET_VARIANTS}
