"""Per-domain pre-trained sequence encoder of LGCD (paper section 3.3.1, equations 1-3).

Two causal Transformer encoders in the style of SASRec (Kang & McAuley, ICDM 2018)
with nanoGPT's pre-LayerNorm blocks, and a linear fusion layer:

    h_ID     = Encoder_ID(S)              over the user's item IDs           (eq. 1)
    h_text   = Encoder_text(C)            over the items' text embeddings,
                                          projected from E to d               (eq. 1)
    h_fusion = W_fusion [h_ID ⊕ h_text] + b_fusion                           (eq. 2)
    P(v | S) = softmax(h_fusion · E_fusion),
    E_fusion = W_fusion [E_ID ⊕ E_text] + b_fusion  (same W, b)               (eq. 3)

``E_ID`` is the ID encoder's input embedding table and ``E_text`` the item text
embeddings through the text encoder's input projection, so scoring and encoding
share parameters. The (N, E) item text embedding matrix is a buffer of the
module: a checkpoint alone rebuilds the encoder, with no embedding table needed.

How later stages use it (this is the stable API)::

    enc = DomainEncoder.from_checkpoint(ckpt.state_dict, ckpt.config).eval()
    # or both domains at once: encoders_from_checkpoints({"A": ckpt_a, "B": ckpt_b})
    items, mask = pad_sequences(histories, enc.cfg.max_len)  # (B, L) int64, (B, L) bool
    h_id = enc.encode_ids(items, mask)          # (B, d) collaborative signal, eq. 1
    h_text = enc.encode_text(text_emb, mask)    # (B, d) semantic signal; text_emb (B, L, E)
                                                #   from models.encoders.text_embedding.TextEmbedder
    h = enc.fuse(h_id, h_text)                  # (B, d) eq. 2
    scores = h @ enc.item_table().T             # (B, N) eq. 3

* pseudo-overlap grounding (eqs. 5-6) runs the target domain's ``encode_text``
  on the embeddings of LLM-generated titles (same embedder config!) and
  compares with ``item_text`` (E_text) or ``item_table()``;
* the diffusion model's conditions use ``encode_ids`` / ``encode_text`` /
  ``fuse`` of each domain's frozen encoder.

Sequences may be left- or right-padded: ``mask`` is True at real items, positions
are counted from the first real item, and attention never reads padding, so the
padding side and amount do not change any real position's output.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

ARCH = "lgcd.DomainEncoder/1"


@dataclass(frozen=True)
class EncoderConfig:
    """Shape of one domain's encoder; saved in the checkpoint to rebuild it."""

    n_items: int  # N, items of the domain (rows of the item table)
    text_dim: int  # E, width of the item text embeddings
    d: int = 64  # hidden size (paper 4.1.3: 64)
    n_heads: int = 2  # attention heads per block
    n_layers: int = 2  # Transformer blocks per modality
    max_len: int = 50  # longest history the positional table covers
    dropout: float = 0.2  # on embeddings, attention and residual branches

    def __post_init__(self) -> None:
        for name in ("n_items", "text_dim", "d", "n_heads", "n_layers", "max_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"encoder {name}={value!r}; must be a positive integer")
        if self.d % self.n_heads:
            raise ValueError(f"encoder d={self.d} is not divisible by n_heads={self.n_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"encoder dropout={self.dropout!r}; allowed [0, 1)")


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.n_heads, self.dropout = cfg.n_heads, cfg.dropout
        self.qkv = nn.Linear(cfg.d, 3 * cfg.d)
        self.proj = nn.Linear(cfg.d, cfg.d)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        B, L, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)  # 3 x (B, L, d)
        q, k, v = (t.view(B, L, self.n_heads, d // self.n_heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(  # (B, nh, L, hs)
            q, k, v, attn_mask=allowed, dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, L, d)
        return self.resid_drop(self.proj(y))


class Block(nn.Module):
    """Pre-LayerNorm Transformer block (nanoGPT)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d), nn.LayerNorm(cfg.d)
        self.attn = CausalSelfAttention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.d, 4 * cfg.d), nn.GELU(),
                                 nn.Linear(4 * cfg.d, cfg.d), nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), allowed)
        return x + self.mlp(self.ln2(x))


def attention_mask(mask: torch.Tensor) -> torch.Tensor:
    """(B, L) real-item mask -> (B, 1, L, L) "query i may read key j" for SDPA.

    Causal and padding-blind; each position may also read itself, so a padding
    query has one key and stays finite (its output is never used).
    """
    L = mask.shape[1]
    eye = torch.eye(L, dtype=torch.bool, device=mask.device)
    causal = torch.ones(L, L, dtype=torch.bool, device=mask.device).tril()
    return ((causal & mask[:, None, :]) | eye)[:, None]  # (B, 1, L, L)


class CausalEncoder(nn.Module):
    """Learned positions + causal blocks + final LayerNorm: (B, L, d) -> (B, L, d)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.pos = nn.Embedding(cfg.max_len, cfg.d)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        positions = (mask.long().cumsum(1) - 1).clamp(min=0)  # (B, L), 0 at the first real item
        x = self.drop(x + self.pos(positions))
        allowed = attention_mask(mask)
        for block in self.blocks:
            x = block(x, allowed)
        return self.ln_f(x)


class DomainEncoder(nn.Module):
    """ID and text sequence encoders of one domain plus their fusion layer (eqs. 1-3)."""

    def __init__(self, cfg: EncoderConfig, item_text: torch.Tensor | None = None):
        super().__init__()
        self.cfg = cfg
        self.item_emb = nn.Embedding(cfg.n_items, cfg.d)  # E_ID
        self.text_proj = nn.Linear(cfg.text_dim, cfg.d)  # E -> d for sequences and E_text
        self.id_encoder = CausalEncoder(cfg)
        self.text_encoder = CausalEncoder(cfg)
        self.fusion = nn.Linear(2 * cfg.d, cfg.d)  # W_fusion (d x 2d), b_fusion
        if item_text is None:
            item_text = torch.zeros(cfg.n_items, cfg.text_dim)
        if tuple(item_text.shape) != (cfg.n_items, cfg.text_dim):
            raise ValueError(f"item_text has shape {tuple(item_text.shape)}, "
                             f"expected ({cfg.n_items}, {cfg.text_dim})")
        self.register_buffer("item_text", item_text.detach().float().clone())  # (N, E)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    # ------------------------------------------------------------ per position

    def id_states(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ID encoder output at every position: (B, L) -> (B, L, d)."""
        self._check(items, mask)
        return self.id_encoder(self.item_emb(items.masked_fill(~mask, 0)), mask)

    def text_states(self, text_emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Text encoder output at every position: (B, L, E) -> (B, L, d)."""
        if text_emb.dim() != 3 or text_emb.shape[-1] != self.cfg.text_dim:
            raise ValueError(f"text_emb must be (B, L, {self.cfg.text_dim}), "
                             f"got {tuple(text_emb.shape)}")
        self._check_mask(mask, text_emb.shape[:2])
        return self.text_encoder(self.text_proj(text_emb), mask)

    def forward(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Fused representation at every position, text taken from the item buffer: (B, L, d).

        Position t depends only on items 0..t, so one pass gives every prefix's
        next-item prediction (the training loss uses all of them).
        """
        h_id = self.id_states(items, mask)  # (B, L, d)
        h_text = self.text_states(self.item_text[items.masked_fill(~mask, 0)], mask)  # (B, L, d)
        return self.fuse(h_id, h_text)

    # ------------------------------------------------------------ per user

    def encode_ids(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """h_ID of eq. 1: the ID encoder's state at the last real item, (B, d)."""
        return last_real(self.id_states(items, mask), mask)

    def encode_text(self, text_emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """h_text of eq. 1 from a sequence of text embeddings (B, L, E), (B, d)."""
        return last_real(self.text_states(text_emb, mask), mask)

    def encode_item_text(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """h_text of eq. 1 for real items of this domain (their buffered text), (B, d)."""
        self._check(items, mask)
        return self.encode_text(self.item_text[items.masked_fill(~mask, 0)], mask)

    def encode(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """h_fusion of eq. 2 for real item sequences, (B, d)."""
        return last_real(self(items, mask), mask)

    def fuse(self, h_id: torch.Tensor, h_text: torch.Tensor) -> torch.Tensor:
        """Eq. 2: W_fusion [h_id ⊕ h_text] + b_fusion on (..., d) inputs."""
        return self.fusion(torch.cat([h_id, h_text], dim=-1))

    def item_table(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """E_fusion of eq. 3: every item's fused embedding (N, d), or only ``rows``' (C, d).

        The sampled softmax needs the candidates' rows only, which on a 27k-item
        catalog is most of a training step's cost saved.
        """
        if rows is None:
            return self.fuse(self.item_emb.weight, self.text_proj(self.item_text))
        return self.fuse(self.item_emb(rows), self.text_proj(self.item_text[rows]))

    # ------------------------------------------------------------ checkpoint

    def to_checkpoint(self) -> tuple[dict[str, torch.Tensor], dict]:
        """(state_dict on CPU, JSON config) — wrap in ``pipeline.storage.Checkpoint`` to store."""
        state = {k: v.detach().cpu().clone() for k, v in self.state_dict().items()}
        return state, {"arch": ARCH, **asdict(self.cfg)}

    @classmethod
    def from_checkpoint(cls, state_dict: dict[str, torch.Tensor], config: dict) -> "DomainEncoder":
        """Rebuild exactly the saved encoder (in train mode, on CPU; call ``.eval()``)."""
        if config.get("arch") != ARCH:
            raise ValueError(f"checkpoint arch {config.get('arch')!r} is not {ARCH!r}")
        cfg = EncoderConfig(**{k: v for k, v in config.items() if k != "arch"})
        model = cls(cfg, item_text=state_dict["item_text"])
        model.load_state_dict(state_dict, strict=True)
        return model

    # ------------------------------------------------------------ input checks

    def _check_mask(self, mask: torch.Tensor, shape: torch.Size) -> None:
        if mask.dtype != torch.bool or tuple(mask.shape) != tuple(shape):
            raise ValueError(f"mask must be bool of shape {tuple(shape)}, got {mask.dtype} "
                             f"{tuple(mask.shape)}")
        if shape[1] > self.cfg.max_len:
            raise ValueError(f"sequence length {shape[1]} exceeds max_len={self.cfg.max_len}; "
                             "keep the most recent items (pad_sequences does)")

    def _check(self, items: torch.Tensor, mask: torch.Tensor) -> None:
        if items.dim() != 2 or items.dtype != torch.long:
            raise ValueError(f"items must be int64 (B, L), got {items.dtype} {tuple(items.shape)}")
        self._check_mask(mask, items.shape)
        real = items[mask]
        if real.numel() and (int(real.min()) < 0 or int(real.max()) >= self.cfg.n_items):
            raise ValueError(f"item index out of range [0, {self.cfg.n_items}): "
                             f"min {int(real.min())}, max {int(real.max())}")


class CheckpointParts(Protocol):
    """A saved model's parts, as ``pipeline.storage.Checkpoint`` holds them (models/ never imports it)."""

    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any]


def encoders_from_checkpoints(checkpoints: Mapping[str, CheckpointParts]) -> dict[str, DomainEncoder]:
    """Each domain's encoder rebuilt from its checkpoint, in eval mode: later stages use them frozen.

    A fresh module per call, so a model that fine-tunes (and so overwrites) its encoders
    never shares them with another.
    """
    return {d: DomainEncoder.from_checkpoint(c.state_dict, c.config).eval()
            for d, c in checkpoints.items()}


def last_real(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """State at each row's last real position, left or right padded: (B, L, d) -> (B, d)."""
    if not bool(mask.any(dim=1).all()):
        raise ValueError("every sequence needs at least one real item (a row of mask is all False)")
    L = mask.shape[1]
    last = L - 1 - mask.flip(1).long().argmax(dim=1)  # (B,)
    return states[torch.arange(states.shape[0], device=states.device), last]


def pad_sequences(sequences: list[list[int]], max_len: int, side: str = "left",
                  device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch ragged histories into (items (B, L) int64, mask (B, L) bool).

    Each history keeps its last ``max_len`` items; L is the longest kept one (at least 1).
    """
    if side not in ("left", "right"):
        raise ValueError(f"side={side!r}; use 'left' or 'right'")
    kept = [list(s)[-max_len:] for s in sequences]
    L = max([len(s) for s in kept] + [1])
    items = torch.zeros(len(kept), L, dtype=torch.long)
    mask = torch.zeros(len(kept), L, dtype=torch.bool)
    for row, seq in enumerate(kept):
        if seq:
            cols = slice(L - len(seq), L) if side == "left" else slice(0, len(seq))
            items[row, cols] = torch.tensor(seq, dtype=torch.long)
            mask[row, cols] = True
    if device is not None:
        items, mask = items.to(device), mask.to(device)
    return items, mask


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (the item text buffer is not one)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["ARCH", "CheckpointParts", "DomainEncoder", "EncoderConfig", "attention_mask",
           "count_parameters", "encoders_from_checkpoints", "last_real", "pad_sequences"]
