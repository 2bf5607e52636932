"""EMCDR-style mapping baseline (Man et al., IJCAI 2017) on the pre-trained domain encoders.

EMCDR learns user factors per domain, then an MLP that maps a user's source
factors to the target factors, fitted on users present in both domains. Here the
per-domain "factors" are the frozen pre-trained sequence encoders' fused states
(models/encoders/sequence.py, eq. 2): for every overlapping training user and each
direction s -> t whose last item of domain t is the prediction target, x =
Enc_s(source items before that item) and y = Enc_t(the user's earlier items of
domain t), the state that the target encoder itself would use to predict it. The
target item is never part of y: encoding it in (as an earlier version did) maps
source users onto the state *after* their target, which predicts the item that
follows it. A tanh MLP per direction minimizes ||f(x) - y||^2. A cold-start user
is scored with f(Enc_s(history)) . E^t_fusion (the target encoder's item table,
computed once per scoring call), i.e. LGCD's scoring without diffusion, guesser or
pseudo users.
"""

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.encoders.sequence import DomainEncoder, pad_sequences
from models.evaluation.baselines.common import BaselineFit, Interactions, fit_with_loop, scores_for
from models.evaluation.config import EMCDRConfig
from models.evaluation.ranking import EvalUser

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
    """Direction -> (x (n, d), y (n, d)) over overlapping users, the target item held out.

    A user counts for s -> t when its last domain-t item has source items before it and
    domain-t items before it; x encodes those source items, y those earlier domain-t items.
    """
    pairs = {}
    for direction in DIRECTIONS:
        src, tgt = direction
        xs, ys = [], []
        for items, doms, overlap in zip(train.items, train.domains, train.overlap, strict=True):
            if not overlap:
                continue
            at = [k for k, d in enumerate(doms) if d == tgt]
            if not at:
                continue
            last = at[-1]
            s = [i for i, d in zip(items[:last], doms[:last], strict=True) if d == src]
            t = [i for i, d in zip(items[:last], doms[:last], strict=True) if d == tgt]
            if s and t:
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
                ) -> tuple[EMCDRScorer, BaselineFit]:
    """Fit both directions' maps with ``seed``; early stopping on ``validate`` (NDCG@10)."""
    pairs = mapping_pairs(train, encoders)
    if not any(len(x) for x, _ in pairs.values()):
        raise ValueError("EMCDR: no overlapping training user has source items and an earlier "
                         "target-domain item before its last target-domain item")
    torch.manual_seed(seed)
    model = EMCDR(encoders["A"].cfg.d, cfg.hidden)
    scorer = EMCDRScorer(model, encoders)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps = sum(-(-len(x) // cfg.batch_size) for x, _ in pairs.values())

    def epoch_batches(epoch: int) -> list[tuple[str, Tensor]]:
        out = []
        for i, (direction, (x, _)) in enumerate(pairs.items()):
            order = np.random.default_rng([seed, epoch, i]).permutation(len(x))
            out += [(direction, torch.from_numpy(order[s:s + cfg.batch_size]))
                    for s in range(0, len(order), cfg.batch_size)]
        return out

    def loss(batch: tuple[str, Tensor]) -> Tensor:
        direction, idx = batch
        x, y = pairs[direction]
        return F.mse_loss(model.maps[direction](x[idx]), y[idx])

    result = fit_with_loop(model, optimizer, epoch_batches, loss, lambda: validate(scorer),
                           cfg.loop(), seed=seed, steps_per_epoch=steps, name="emcdr",
                           on_epoch=on_epoch)
    return scorer, result
