"""LGCD: LLM-guided conditional diffusion for cross-domain recommendation (paper sections 3.4, 3.5).

One model serves both transfer directions. The per-domain pre-trained encoders
(section 3.3.1, ``DomainEncoder``) are shared: domain A's encoder builds the
condition for A -> B and the target feature for B -> A. Each direction owns a
``TransferPath``: its guesser g (eqs 21-22), its conditional diffusion model
(eqs 9-19) and its fusion head (eqs 23-24), because the two target spaces differ.

How a per-domain ID encoder reads a mixed sequence. Encoder^A_ID only has
embedding rows for domain-A items, so it cannot read domain-B indices. By default
(``cross_id=False``) h_ID comes from real source items only, for every row, exactly
as for a test user (section 3.4.1). With ``cross_id=True`` a real overlapping
user's target-domain items are also read by Enc^tgt_ID and added through a
zero-initialised linear map: h_ID = Enc^src_ID(real source items) + W_x
Enc^tgt_ID(real target items); no test row has such items, so that is a
train/test gap. Pseudo items never reach an ID encoder: the collator replaces
their indices by padding and masks them (``PathBatch.tgt_id_items``). Their
*text* still forms h_tgt.

Trainable parts. By default the pre-trained encoders are frozen (and kept in
eval mode): h_tgt, the item tables and the encoders' features are fixed, and
LGCD trains the condition fusion f_fusion of eq 8, the guessers, the diffusion
models, the fusion heads and the item biases. ``finetune_encoders=True`` trains
everything.

Deviations from the paper, each a config field (README "The training path"):
* ``train_start="guesser"``: in training the reverse process starts from
  g(h_cond), as at inference (eq 22), so L_rec trains the guesser -> reverse ->
  fusion path a test user is scored through; the paper's training start is not
  stated, and ``"x0_hat"`` starts diffused rows from x_hat_0 of the true h_tgt.
* ``item_bias`` (off): eq 25 scores h_final · E_fusion; the option adds a
  per-item bias b_i started at log-popularity. On Food-Kitchen it changed
  validation NDCG@10 by +2% (0.228 vs 0.223, within noise), so the paper's
  form stays the default.
* ``item_residual`` and ``overlap_targets`` (off / ``"last"``, each per target domain): a
  learned residual on the frozen target table, and L_rec on every cross-domain moment of a
  real overlapping user instead of its last item only. Measured on the whole Food-Kitchen
  valid split, neither lifted validation NDCG@10 beyond noise in either direction, and
  together they cost the Kitchen target (README "The training path").
* ``source_adapter`` (off): h_ID also adds a recency-weighted mean of learned
  embeddings of the source items, owned by the path and started at zero. The frozen
  source encoder was trained to predict its own domain's next item, so its h_ID keeps
  what that needs; which target items a source item leads to is what the sequential
  baselines learn in their item embeddings, and the adapter gives LGCD the same room.
  It moved Food-target validation by at most 0.016 (noise), so it stays off.
* ``finetune_condition`` (off): each path conditions on its own trainable copy of the
  source encoder, started at the pre-trained weights, while h_tgt and the target tables
  stay with the frozen shared encoders; unlike ``finetune_encoders`` the two directions
  stay independent, so ``early_stopping="per_direction"`` still applies. It lowered
  validation NDCG@10 in both directions (0.18 / 0.23 against 0.23 / 0.25), so it stays off.
* ``pseudo_weight`` and ``epoch_unit`` (models/lgcd/data.py TrainBatches): the pseudo
  stream's share of the loss is its share of the rows, not half, and an epoch is
  a pass over the real overlapping users.
Choices the paper leaves open: rows excluded from diffusion training by an
ablation get no L_diff/L_align and send no gradient into the denoiser; h_tgt is
detached (``detach_target``); L_align treats h_cond as a fixed anchor; "w/o
Diffusion" scores with h_cond directly ("directly employs conditional signals for
prediction"). Squared norms are summed over d, as written in eqs 17, 20 and 21
(``sq_reduce="mean"`` averages them instead, which keeps them on the scale of
L_rec when d is large).

Per-row losses are combined with the row weights of the batch (see
models/lgcd/data.py TrainBatches): real overlap users carry L_diff + L_guess + L_rec
(eq 26), pseudo users L_diff + L_guess + L_align + L_rec (eq 27).
"""

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.lgcd.config import LGCDConfig
from models.lgcd.data import DIRECTIONS, LGCDBatch, PathBatch
from models.lgcd.diffusion import ConditionalDiffusion, condition_tokens
from models.lgcd.moe import build_fusion

LOSS_NAMES = ("diff", "guess", "align", "rec")


@runtime_checkable
class SequenceEncoder(Protocol):
    """What LGCD needs from a pre-trained per-domain encoder (models/encoders/sequence.py).

    Masks are True at real positions; every row has at least one real position.
    """

    def encode_ids(self, items: Tensor, mask: Tensor) -> Tensor:
        """(B, L) item indices -> (B, d) collaborative representation h_ID (eq 1)."""
        ...

    def encode_text(self, text_emb: Tensor, mask: Tensor) -> Tensor:
        """(B, L, E) item text embeddings -> (B, d) semantic representation h_text (eq 1)."""
        ...

    def fuse(self, h_id: Tensor, h_text: Tensor) -> Tensor:
        """W_fusion [h_ID ⊕ h_text] + b (eq 2): (B, d), (B, d) -> (B, d)."""
        ...

    def item_table(self) -> Tensor:
        """Fused embeddings E_fusion of all items of the domain, (N, d) (eq 3)."""
        ...


@dataclass
class PathOutput:
    """Per-direction representations; ``logits`` are over the full target catalog."""

    h_cond: Tensor  # (B, d) eq 8
    h_rev: Tensor  # (B, d) reverse-process output (h_cond without diffusion)
    h_final: Tensor  # (B, d) eq 24
    logits: Tensor  # (B, N_tgt) eq 25


class TransferPath(nn.Module):
    """Everything one direction owns: cross-domain ID map, guesser, diffusion and fusion."""

    def __init__(self, cfg: LGCDConfig, target_domain: str, n_target: int, n_source: int,
                 source_encoder: nn.Module | None = None):
        super().__init__()
        d = cfg.d
        if source_encoder is not None:  # finetune_condition: this path's own trainable copy
            self.cond_encoder = copy.deepcopy(source_encoder).requires_grad_(True)
        self.t_start = cfg.t_start(target_domain)
        self.cond_fusion = nn.Linear(2 * d, d)  # trainable part of f^src_fusion (eq 8)
        layers = [self.cond_fusion]
        if cfg.cross_id:
            self.cross_id = nn.Linear(d, d)  # W_x: real target-domain IDs of overlap users
            layers.append(self.cross_id)
        for layer in layers:  # start from the pre-trained encoders
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        if cfg.item_bias:  # b_i of the target items, (N_tgt,); fit() starts it at log-popularity
            self.item_bias = nn.Parameter(torch.zeros(n_target))
        if cfg.item_residual[target_domain]:  # (N_tgt, d) added to the target table; from 0
            self.item_residual = nn.Parameter(torch.zeros(n_target, d))
        if cfg.source_adapter:  # (N_src, d) ID embeddings of this direction's own; start at 0
            self.source_adapter = nn.Embedding(n_source, d)
            nn.init.zeros_(self.source_adapter.weight)
            self.adapter_recency = nn.Parameter(torch.zeros(cfg.max_len))  # 0: a plain mean
        self.guesser = nn.Linear(d, d)  # g_{src->tgt}, eqs 21 and 22
        self.diffusion = ConditionalDiffusion(
            d, cfg.n_heads, cfg.T, cfg.beta_min, cfg.beta_max, cfg.conditioning, cfg.target,
            cfg.ffn_mult, cfg.dropout, cfg.cfg_drop)
        self.fusion = build_fusion(cfg.fusion, d, cfg.n_experts)

    def adapt(self, items: Tensor, mask: Tensor) -> Tensor:
        """Recency-weighted mean of the adapter embeddings of the source items, (B, d).

        items, mask: (B, L), right-padded (models/lgcd/data.py _pad), so the most recent real item of
        row i sits at position len_i - 1; weights are a softmax over learned logits indexed
        by the distance from it (0 = most recent), masked to the real positions.
        """
        length = mask.sum(1, keepdim=True)  # (B, 1)
        positions = torch.arange(items.shape[1], device=items.device)  # (L,)
        back = (length - 1 - positions).clamp(0, self.adapter_recency.shape[0] - 1)  # (B, L)
        logits = self.adapter_recency[back].masked_fill(~mask, float("-inf"))  # (B, L)
        weights = torch.softmax(logits, dim=1).unsqueeze(-1)  # (B, L, 1)
        return (weights * self.source_adapter(items)).sum(1)  # (B, d)


class LGCD(nn.Module):
    """The whole model; ``forward(batch) -> (outputs per direction, loss dict)``.

    encoders: {"A": SequenceEncoder, "B": SequenceEncoder} (nn.Modules, d = cfg.d).
    text_tables: optional {"A": (N_A, E), "B": (N_B, E)} item text embeddings in item-index
    order that feed ``encode_text``; by default each encoder's ``item_text`` buffer
    (models/encoders/sequence.py). Given tables are non-persistent buffers.
    """

    def __init__(self, cfg: LGCDConfig, encoders: Mapping[str, nn.Module],
                 text_tables: Mapping[str, Tensor] | None = None):
        super().__init__()
        if set(encoders) != {"A", "B"}:
            raise ValueError(f"LGCD needs encoders for exactly 'A' and 'B', got {sorted(encoders)}")
        self.cfg = cfg
        self.encoders = nn.ModuleDict(dict(encoders))
        self._tables: dict[str, tuple[tuple, Tensor]] = {}  # frozen E_fusion, see item_table
        self._own_text = text_tables is not None
        for dom in ("A", "B"):
            enc = self.encoders[dom]
            if not isinstance(enc, SequenceEncoder):
                raise TypeError(f"encoder {dom} lacks the SequenceEncoder methods")
            if text_tables is not None:
                self.register_buffer(f"text_{dom}", text_tables[dom].float(), persistent=False)
            elif not isinstance(getattr(enc, "item_text", None), Tensor):
                raise ValueError(f"encoder {dom} holds no item_text buffer; pass text_tables")
            with torch.no_grad():
                n, d = enc.item_table().shape
            n_text = self.text_table(dom).shape[0]
            if d != cfg.d or n != n_text:
                raise ValueError(f"encoder {dom}: item table {n}x{d} does not match cfg.d={cfg.d} "
                                 f"and the {n_text} rows of its text table")
            enc_len = getattr(getattr(enc, "cfg", None), "max_len", cfg.max_len)
            if enc_len < cfg.max_len:
                raise ValueError(f"cfg.max_len={cfg.max_len} exceeds encoder {dom}'s max_len "
                                 f"{enc_len}")
            enc.requires_grad_(cfg.finetune_encoders)
        sizes = {dom: self.text_table(dom).shape[0] for dom in ("A", "B")}
        self.paths = nn.ModuleDict({
            dr: TransferPath(cfg, dr[1], sizes[dr[1]], sizes[dr[0]],
                             self.encoders[dr[0]] if cfg.finetune_condition else None)
            for dr in DIRECTIONS})
        self.train()  # puts frozen encoders in eval mode from the start

    def train(self, mode: bool = True) -> "LGCD":
        """Frozen encoders stay in eval mode (no dropout), so their features are fixed."""
        super().train(mode)
        if not self.cfg.finetune_encoders:
            self.encoders.eval()
        return self

    def text_table(self, dom: str) -> Tensor:
        """(N, E) item text embeddings of a domain: given ones, else the encoder's buffer."""
        return getattr(self, f"text_{dom}") if self._own_text else self.encoders[dom].item_text

    # ------------------------------------------------------------ building blocks

    def condition(self, direction: str, b: PathBatch) -> tuple[Tensor, Tensor, Tensor]:
        """h_cond = f^src_fusion(h_ID ⊕ h_text) (eq 8), with h_ID and h_text; each (B, d).

        f^src_fusion is the source encoder's pre-trained fusion (eq 2) plus a zero-initialised
        linear map of the same shape owned by the path, so the condition stays trainable
        when the encoders are frozen; the sum is again one linear map of [h_ID ⊕ h_text].
        """
        src, tgt = direction
        enc_s = getattr(self.paths[direction], "cond_encoder", None)
        if enc_s is None:
            enc_s = self.encoders[src]
        h_id = enc_s.encode_ids(b.src_items, b.src_mask)  # (B, d)
        if self.cfg.source_adapter:
            h_id = h_id + self.paths[direction].adapt(b.src_items, b.src_mask)
        if self.cfg.cross_id and b.any_tgt_ids:
            h_x = self.encoders[tgt].encode_ids(b.tgt_id_items, b.tgt_id_mask)  # (B, d)
            h_id = h_id + b.has_tgt_ids.unsqueeze(-1) * self.paths[direction].cross_id(h_x)
        h_text = enc_s.encode_text(self.text_table(src)[b.src_items], b.src_mask)
        pair = torch.cat([h_id, h_text], dim=-1)  # (B, 2d)
        h_cond = enc_s.fuse(h_id, h_text) + self.paths[direction].cond_fusion(pair)
        return h_cond, h_id, h_text

    def target_feature(self, direction: str, b: PathBatch) -> Tensor:
        """h_tgt = Enc^tgt_text(target-domain text history) (eq 7), (B, d)."""
        tgt = direction[1]
        h = self.encoders[tgt].encode_text(self.text_table(tgt)[b.tgt_items], b.tgt_mask)
        return h.detach() if self.cfg.detach_target else h

    def item_table(self, dom: str) -> Tensor:
        """E_fusion of a domain's items (N, d); computed once while the encoders are frozen.

        The table projects all N item texts (384 -> d) and costs more than the rest of a
        training step (40 ms of 165 on Food-Kitchen, one thread), yet a frozen encoder's table
        never changes. The cache key holds every encoder tensor's storage and version
        counter, so loading weights, an in-place edit or a device move recomputes it.
        """
        enc = self.encoders[dom]
        if self.cfg.finetune_encoders:
            return enc.item_table()
        key = tuple((t.data_ptr(), t._version) for t in (*enc.parameters(), *enc.buffers()))
        cached = self._tables.get(dom)
        if cached is None or cached[0] != key:
            with torch.no_grad():
                cached = (key, enc.item_table())
            self._tables[dom] = cached
        return cached[1]

    def logits(self, direction: str, h: Tensor, candidates: Tensor | None = None) -> Tensor:
        """Scores h · E^tgt_fusion (+ b_i): all items (B, N_tgt) or candidates (B, C)."""
        table = self.item_table(direction[1])  # (N_tgt, d)
        residual = getattr(self.paths[direction], "item_residual", None)
        if residual is not None:
            table = table + residual
        bias = getattr(self.paths[direction], "item_bias", None)
        if candidates is None:
            out = h @ table.T
            return out if bias is None else out + bias
        out = torch.einsum("bd,bcd->bc", h, table[candidates])
        return out if bias is None else out + bias[candidates]

    @torch.no_grad()
    def init_item_bias(self, direction: str, counts: Tensor) -> None:
        """Start b_i at log(count_i + 1), centred: the scorer begins at target popularity."""
        path = self.paths[direction]
        if hasattr(path, "item_bias"):
            prior = torch.log1p(counts.to(path.item_bias))
            path.item_bias.copy_(prior - prior.mean())

    def _initial(self, path: TransferPath, h_cond: Tensor,
                 generator: torch.Generator | None) -> Tensor:
        """h_init at inference (eq 22); "w/o Guesser" starts from a random vector instead."""
        if self.cfg.use_guesser:
            return path.guesser(h_cond)
        return torch.randn(h_cond.shape, device=h_cond.device, dtype=h_cond.dtype,
                           generator=generator)

    # ------------------------------------------------------------ training

    def _path_forward(self, direction: str, b: PathBatch) -> tuple[PathOutput, dict[str, Tensor]]:
        cfg, path = self.cfg, self.paths[direction]
        h_cond, h_id, h_text = self.condition(direction, b)
        zero = h_cond.new_zeros(len(b))
        per_row = {name: zero for name in LOSS_NAMES}
        if not cfg.use_diffusion:
            h_rev = h_final = h_cond  # w/o Diffusion: the condition is the user representation
        else:
            h_tgt = self.target_feature(direction, b)  # (B, d)
            z = path.diffusion.drop_condition(
                condition_tokens(cfg.conditioning, cfg.cond_tokens, h_cond, h_id, h_text))
            diff, x0_hat = path.diffusion.training_loss(h_tgt, z)  # (B,), (B, d)
            guess = path.guesser(h_cond) if cfg.use_guesser else None
            start = guess if guess is not None else torch.randn_like(h_cond)  # as at test time
            # rows that train the diffusion model (Table 3's w/o Overlap / Pseudo Diffusion
            # exclude a kind); the others start as at test time and pass no gradient into the
            # denoiser. train_start="x0_hat" starts diffused rows from x_hat_0 of the true h_tgt
            diffused = (b.is_overlap & cfg.diffuse_overlap) | (b.is_pseudo & cfg.diffuse_pseudo)
            h_init = start
            if cfg.train_start == "x0_hat":
                h_init = torch.where((b.has_tgt & diffused).unsqueeze(-1), x0_hat, start)
            h_rev = path.diffusion.reverse(h_init, z, path.t_start)
            h_rev = torch.where(diffused.unsqueeze(-1), h_rev, h_rev.detach())
            scale = 1.0 / cfg.d if cfg.sq_reduce == "mean" else 1.0
            has = b.has_tgt.float() * scale
            per_row["diff"] = diff * has * diffused.float()  # eq 17
            if guess is not None:
                per_row["guess"] = (guess - h_tgt).pow(2).sum(-1) * has  # eq 21
            if cfg.use_align and cfg.diffuse_pseudo:
                align = (h_rev - h_cond.detach()).pow(2).sum(-1) * scale  # eq 20, h_cond anchors
                per_row["align"] = align * b.is_pseudo.float()
            h_final = path.fusion(h_cond, h_rev)  # (B, d) eq 24
        logits = self.logits(direction, h_final)  # (B, N_tgt)
        per_row["rec"] = F.cross_entropy(logits, b.target, reduction="none")  # eq 25
        return PathOutput(h_cond, h_rev, h_final, logits), per_row

    def forward(self, batch: LGCDBatch) -> tuple[dict[str, PathOutput], dict[str, Tensor]]:
        """Weighted losses of eqs 26-27 over both directions: diff, guess, align, rec, total."""
        outputs: dict[str, PathOutput] = {}
        losses: dict[str, Tensor] = {}
        for direction, b in batch.paths.items():
            outputs[direction], per_row = self._path_forward(direction, b)
            for name in LOSS_NAMES:
                term = (b.weight * per_row[name]).sum()
                losses[name] = losses[name] + term if name in losses else term
        weights = self.cfg.loss_weights()
        losses["total"] = sum(weights[n] * losses[n] for n in LOSS_NAMES)
        return outputs, losses

    # ------------------------------------------------------------ inference

    @torch.no_grad()
    def user_representation(self, direction: str, b: PathBatch,
                            generator: torch.Generator | None = None) -> Tensor:
        """h_final (B, d) at inference: guesser start, reverse process, fusion.

        ``generator`` (on the model's device) fixes the forward jump to t_start and
        the w/o-Guesser random start, making evaluation reproducible.
        """
        cfg, path = self.cfg, self.paths[direction]
        h_cond, h_id, h_text = self.condition(direction, b)
        if not cfg.use_diffusion:
            return h_cond
        z = condition_tokens(cfg.conditioning, cfg.cond_tokens, h_cond, h_id, h_text)
        h_init = self._initial(path, h_cond, generator)
        guidance = cfg.cfg_weight if cfg.conditioning == "cfg" else 0.0
        h_rev = path.diffusion.reverse(h_init, z, path.t_start, guidance=guidance,
                                       generator=generator)
        return path.fusion(h_cond, h_rev)

    @torch.no_grad()
    def score(self, direction: str, b: PathBatch, candidates: Tensor | None = None,
              generator: torch.Generator | None = None) -> Tensor:
        """Score h_final · E^tgt_fusion: all items (B, N_tgt), or candidates (B, C) -> (B, C)."""
        return self.logits(direction, self.user_representation(direction, b, generator),
                           candidates)
