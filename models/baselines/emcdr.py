"""EMCDR-style mapping baseline (Man et al., IJCAI 2017) on the pre-trained domain encoders.

EMCDR learns user factors per domain, then an MLP that maps a user's source
factors to the target factors, fitted on users present in both domains. Here the
per-domain "factors" are the frozen pre-trained sequence encoders' fused states
(models/sequence_encoder.py, eq. 2): for every overlapping training user and each
direction s -> t, x = Enc_s(source-domain items) and y = Enc_t(target-domain items,
held-out target included); a tanh MLP per direction minimizes ||f(x) - y||^2. A
cold-start user is scored with f(Enc_s(history)) . E^t_fusion (the target encoder's
item table), i.e. LGCD's scoring without diffusion, guesser or pseudo users.
"""

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.baselines.common import FitResult, Interactions, fit_early_stopping, scores_for
from models.eval_config import EMCDRConfig
from models.evaluation import EvalUser
from models.sequence_encoder import DomainEncoder, pad_sequences

DIRECTIONS = ("AB", "BA")


@torch.no_grad()
def encode(encoder: DomainEncoder, sequences: list[list[int]], batch: int = 512) -> Tensor:
    """Fused user states (n, d) of item sequences of the encoder's domain."""
    encoder.eval()
    out = []
    for start in range(0, len(sequences), batch):
        items, mask = pad_sequences(sequences[start:start + batch], encoder.cfg.max_len)
        out.append(encoder.encode(items, mask))
    return torch.cat(out) if out else torch.zeros(0, encoder.cfg.d)


def mapping_pairs(train: Interactions, encoders: dict[str, DomainEncoder]
                  ) -> dict[str, tuple[Tensor, Tensor]]:
    """Direction -> (x (n, d), y (n, d)) over overlapping users with items in both domains."""
    pairs = {}
    for direction in DIRECTIONS:
        src, tgt = direction
        xs, ys = [], []
        for items, doms, overlap in zip(train.items, train.domains, train.overlap, strict=True):
            s = [i for i, d in zip(items, doms, strict=True) if d == src]
            t = [i for i, d in zip(items, doms, strict=True) if d == tgt]
            if overlap and s and t:
                xs.append(s)
                ys.append(t)
        pairs[direction] = (encode(encoders[src], xs), encode(encoders[tgt], ys))
    return pairs


class EMCDR(nn.Module):
    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.maps = nn.ModuleDict({dr: nn.Sequential(nn.Linear(d, hidden), nn.Tanh(),
                                                     nn.Linear(hidden, d))
                                   for dr in DIRECTIONS})


class EMCDRScorer:
    """Scores f_{s->t}(Enc_s(history)) against the target encoder's item table (``Scorer``)."""

    def __init__(self, model: EMCDR, encoders: dict[str, DomainEncoder]):
        self.model, self.encoders = model, encoders

    @torch.no_grad()
    def score(self, users: Sequence[EvalUser], target_domain: str,
              candidates: Tensor | None) -> Tensor:
        self.model.eval()
        src = "B" if target_domain == "A" else "A"
        x = encode(self.encoders[src], [u.source_items() for u in users])  # (B, d)
        h = self.model.maps[src + target_domain](x)  # (B, d)
        table = self.encoders[target_domain].item_table()  # (N_t, d)
        return scores_for(table, h, candidates)


def train_emcdr(train: Interactions, encoders: dict[str, DomainEncoder], cfg: EMCDRConfig,
                seed: int, validate: Callable[[EMCDRScorer], float],
                on_epoch: Callable[[dict[str, float]], None] | None = None
                ) -> tuple[EMCDRScorer, FitResult]:
    """Fit both directions' maps with ``seed``; early stopping on ``validate`` (NDCG@10)."""
    pairs = mapping_pairs(train, encoders)
    if not any(len(x) for x, _ in pairs.values()):
        raise ValueError("EMCDR: no overlapping training user has items in both domains")
    torch.manual_seed(seed)
    model = EMCDR(encoders["A"].cfg.d, cfg.hidden)
    scorer = EMCDRScorer(model, encoders)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def run_epoch(epoch: int) -> float:
        total, steps = 0.0, 0
        for i, (direction, (x, y)) in enumerate(pairs.items()):
            order = np.random.default_rng([seed, epoch, i]).permutation(len(x))
            for start in range(0, len(order), cfg.batch_size):
                idx = torch.from_numpy(order[start:start + cfg.batch_size])
                loss = F.mse_loss(model.maps[direction](x[idx]), y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total, steps = total + loss.item(), steps + 1
        return total / max(1, steps)

    result = fit_early_stopping(model, run_epoch, lambda: validate(scorer), cfg.epochs,
                                cfg.patience, on_epoch)
    return scorer, result
