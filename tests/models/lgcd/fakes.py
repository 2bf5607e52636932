"""Small fake domain encoders implementing the ``models.lgcd.model.SequenceEncoder`` protocol.

Masked mean pooling instead of Transformers: fast, deterministic, and a pooled
output that provably ignores masked positions, which the masking tests rely on.
"""

import numpy as np
import torch
from torch import Tensor, nn


class FakeDomainEncoder(nn.Module):
    def __init__(self, item_text: Tensor, d: int):
        super().__init__()
        self.item_emb = nn.Embedding(item_text.shape[0], d)
        self.text_proj = nn.Linear(item_text.shape[1], d)
        self.fusion = nn.Linear(2 * d, d)
        self.register_buffer("item_text", item_text.float().clone())

    @staticmethod
    def _pool(x: Tensor, mask: Tensor) -> Tensor:
        w = mask.float().unsqueeze(-1)  # (B, L, 1)
        return (x * w).sum(1) / w.sum(1).clamp_min(1.0)

    def encode_ids(self, items: Tensor, mask: Tensor) -> Tensor:
        return self._pool(self.item_emb(items.masked_fill(~mask, 0)), mask)

    def encode_text(self, text_emb: Tensor, mask: Tensor) -> Tensor:
        return self._pool(self.text_proj(text_emb), mask)

    def fuse(self, h_id: Tensor, h_text: Tensor) -> Tensor:
        return self.fusion(torch.cat([h_id, h_text], dim=-1))

    def item_table(self) -> Tensor:
        return self.fuse(self.item_emb.weight, self.text_proj(self.item_text))


def fake_encoders(n_items: dict[str, int], d: int = 16, text_dim: int = 12,
                  seed: int = 0) -> dict[str, FakeDomainEncoder]:
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for dom in ("A", "B"):
        text = torch.randn(n_items[dom], text_dim, generator=gen)
        out[dom] = FakeDomainEncoder(text, d)
    return out


def planted_problem(n_themes: int = 6, items_per_theme: int = 8, text_dim: int = 12,
                    n_pseudo: int = 300, n_overlap: int = 24, n_eval: int = 120, n_k: int = 5,
                    pseudo_precision: float = 0.6, seed: int = 0):
    """Synthetic users whose target-domain taste is a function of their source items.

    Each user has a theme; source items are (mostly) of that theme, and the target item is
    an item of the *mapped* theme in the other domain (theme k in A <-> theme (k+1) in B).
    Item texts cluster by theme, with unrelated cluster centres per domain, so the
    cross-domain map must be learned. Pseudo users carry n_k pseudo target items, only
    ``pseudo_precision`` of which have the right theme (LLM noise).
    Returns (records for rows_from_records, text tables {"A", "B"}, n_items).
    """
    rng = np.random.default_rng(seed)
    n = n_themes * items_per_theme
    theme_of = np.arange(n) % n_themes
    text = {}
    for dom in ("A", "B"):
        centres = rng.normal(size=(n_themes, text_dim))
        text[dom] = torch.tensor(centres[theme_of] + 0.3 * rng.normal(size=(n, text_dim)),
                                 dtype=torch.float32)

    def pick(theme: int) -> int:
        return int(rng.choice(np.flatnonzero(theme_of == theme)))

    def mapped(theme: int, src: str) -> int:
        return (theme + 1) % n_themes if src == "A" else (theme - 1) % n_themes

    def source_items(theme: int) -> list[int]:
        return [pick(theme) if rng.random() < 0.8 else int(rng.integers(n))
                for _ in range(int(rng.integers(3, 7)))]

    records = []
    for u in range(n_pseudo + n_overlap + n_eval):
        src = "A" if u % 2 else "B"
        tgt = "B" if src == "A" else "A"
        theme = int(rng.integers(n_themes))
        items = source_items(theme)
        domains, pseudo = [src] * len(items), [False] * len(items)
        tgt_theme = mapped(theme, src)
        if u < n_pseudo:
            for _ in range(n_k):
                right = rng.random() < pseudo_precision
                pos = int(rng.integers(len(items) + 1))
                items.insert(pos, pick(tgt_theme) if right else int(rng.integers(n)))
                domains.insert(pos, tgt)
                pseudo.insert(pos, True)
            records.append(dict(user=f"p{u}", items=items, domains=domains, is_pseudo=pseudo,
                                source_domain=src, kind="single", split="train"))
        elif u < n_pseudo + n_overlap:
            for _ in range(3):
                pos = int(rng.integers(len(items) + 1))
                items.insert(pos, pick(tgt_theme))
                domains.insert(pos, tgt)
            records.append(dict(user=f"o{u}", items=items, domains=domains, source_domain=src,
                                target_domain=tgt, target_item=pick(tgt_theme), kind="overlap",
                                split="train"))
        else:
            records.append(dict(user=f"e{u}", items=items, domains=domains, source_domain=src,
                                target_domain=tgt, target_item=pick(tgt_theme), kind="single",
                                split="valid"))
    return records, text, {"A": n, "B": n}


def pretrained_fake_encoders(text: dict[str, Tensor], id_scale: float = 0.1
                             ) -> dict[str, FakeDomainEncoder]:
    """Stand-ins for pre-trained encoders (E == d): the text path is the identity and the
    fusion passes text plus a little ID signal, so each domain's representation space
    already clusters items by theme, as a pre-trained text encoder's would."""
    out = {}
    for dom, table in text.items():
        d = table.shape[1]
        enc = FakeDomainEncoder(table, d)
        with torch.no_grad():
            enc.text_proj.weight.copy_(torch.eye(d))
            enc.text_proj.bias.zero_()
            enc.fusion.weight.zero_()
            enc.fusion.weight[:, d:].copy_(torch.eye(d))
            enc.fusion.weight[:, :d].copy_(id_scale * torch.eye(d))
            enc.fusion.bias.zero_()
            enc.item_emb.weight.mul_(id_scale)
        out[dom] = enc
    return out
