"""SASRec and GRU4Rec trained on mixed sequences over one joint item vocabulary of both domains.

SASRec (Kang & McAuley, ICDM 2018) reuses the causal pre-LayerNorm blocks of the
domain encoders (models/sequence_encoder.py); GRU4Rec (Hidasi et al., ICLR 2016)
is a GRU over item embeddings. Both read every training sequence (single-domain
and overlapping users, overlap targets included) and learn next-item prediction
at every position, as in the paper's "trained on the identical dataset" setting.
Scores are dot products with the shared input item embeddings.

Loss: softmax cross-entropy over the whole joint vocabulary when it has at most
``sampled_negatives`` items; otherwise over the positive plus ``sampled_negatives``
uniform negatives shared by the batch, with accidental hits masked (a full softmax
over 36k Food-Kitchen items is too slow on CPUs). A cold-start user is scored from
the history exactly as stored (source-domain only under the strict policy) against
target-domain rows of the table.
"""

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.baselines.common import FitResult, Interactions, JointVocab, fit_early_stopping, scores_for
from models.eval_config import SequentialConfig
from models.evaluation import EvalUser
from models.sequence_encoder import CausalEncoder, EncoderConfig, last_real, pad_sequences

KINDS = ("sasrec", "gru4rec")


class SASRec(nn.Module):
    def __init__(self, n_items: int, cfg: SequentialConfig):
        super().__init__()
        self.item_emb = nn.Embedding(n_items, cfg.d)
        enc_cfg = EncoderConfig(n_items=n_items, text_dim=1, d=cfg.d, n_heads=cfg.n_heads,
                                n_layers=cfg.n_layers, max_len=cfg.max_len, dropout=cfg.dropout)
        self.encoder = CausalEncoder(enc_cfg)
        nn.init.normal_(self.item_emb.weight, std=0.02)

    def states(self, items: Tensor, mask: Tensor) -> Tensor:
        """(B, L) joint ids, (B, L) mask -> (B, L, d) next-item states."""
        return self.encoder(self.item_emb(items.masked_fill(~mask, 0)), mask)


class GRU4Rec(nn.Module):
    def __init__(self, n_items: int, cfg: SequentialConfig):
        super().__init__()
        self.item_emb = nn.Embedding(n_items, cfg.d)
        self.drop = nn.Dropout(cfg.dropout)
        self.gru = nn.GRU(cfg.d, cfg.d, num_layers=cfg.n_layers, batch_first=True)
        nn.init.normal_(self.item_emb.weight, std=0.02)

    def states(self, items: Tensor, mask: Tensor) -> Tensor:
        """(B, L) right-padded joint ids -> (B, L, d); padding follows the real items."""
        out, _ = self.gru(self.drop(self.item_emb(items.masked_fill(~mask, 0))))
        return out


def build(kind: str, n_items: int, cfg: SequentialConfig) -> nn.Module:
    if kind not in KINDS:
        raise ValueError(f"sequential baseline {kind!r}; allowed {list(KINDS)}")
    return SASRec(n_items, cfg) if kind == "sasrec" else GRU4Rec(n_items, cfg)


def _length_buckets(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                    window: int = 50) -> list[np.ndarray]:
    """Shuffled batches of similar length: sort within windows of ``window`` batches.

    Most Food-Kitchen sequences are short and a few are long; batching by similar length
    cuts the padding (and the attention cost) several-fold without a fixed order.
    """
    order = rng.permutation(len(lengths))
    span = batch_size * window
    batches = []
    for start in range(0, len(order), span):
        chunk = order[start:start + span]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _loss(model: nn.Module, states: Tensor, targets: Tensor, mask: Tensor, n_sampled: int,
          generator: torch.Generator) -> Tensor:
    """Mean cross-entropy over real positions; sampled softmax for large vocabularies."""
    table = model.item_emb.weight  # (N, d)
    h, pos = states[mask], targets[mask]  # (P, d), (P,)
    if table.shape[0] <= n_sampled:
        return F.cross_entropy(h @ table.T, pos)
    neg = torch.randint(table.shape[0], (n_sampled,), generator=generator)  # (K,)
    pos_logit = (h * table[pos]).sum(-1, keepdim=True)  # (P, 1)
    neg_logit = (h @ table[neg].T).masked_fill(neg[None, :] == pos[:, None], float("-inf"))
    logits = torch.cat([pos_logit, neg_logit], dim=1)  # (P, 1 + K)
    return F.cross_entropy(logits, torch.zeros(len(pos), dtype=torch.long))


class SequentialScorer:
    """Scores target-domain items from the history's last state (the ``Scorer`` protocol)."""

    def __init__(self, model: nn.Module, vocab: JointVocab, max_len: int):
        self.model, self.vocab, self.max_len = model, vocab, max_len

    @torch.no_grad()
    def score(self, users: Sequence[EvalUser], target_domain: str,
              candidates: Tensor | None) -> Tensor:
        self.model.eval()
        seqs = [self.vocab.ids(list(u.items), list(u.domains)) for u in users]
        items, mask = pad_sequences(seqs, self.max_len, side="right")  # (B, L) x2
        h = last_real(self.model.states(items, mask), mask)  # (B, d)
        table = self.model.item_emb.weight[self.vocab.domain_slice(target_domain)]  # (N_t, d)
        return scores_for(table, h, candidates)


def train_sequential(kind: str, train: Interactions, vocab: JointVocab, cfg: SequentialConfig,
                     seed: int, validate: Callable[[SequentialScorer], float],
                     on_epoch: Callable[[dict[str, float]], None] | None = None
                     ) -> tuple[SequentialScorer, FitResult]:
    """Train one model with ``seed``; early stopping on ``validate(scorer)`` (NDCG@10)."""
    torch.manual_seed(seed)
    model = build(kind, vocab.size, cfg)
    scorer = SequentialScorer(model, vocab, cfg.max_len)
    seqs = [vocab.ids(i, d)[-(cfg.max_len + 1):]
            for i, d in zip(train.items, train.domains, strict=True) if len(i) >= 2]
    if not seqs:
        raise ValueError(f"{kind}: no training sequence has two or more items")
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(seed)

    lengths = np.array([len(s) for s in seqs])

    def run_epoch(epoch: int) -> float:
        total, steps = 0.0, 0
        for idx in _length_buckets(lengths, cfg.batch_size, np.random.default_rng([seed, epoch])):
            batch = [seqs[i] for i in idx]
            inputs, mask = pad_sequences([s[:-1] for s in batch], cfg.max_len, side="right")
            targets, _ = pad_sequences([s[1:] for s in batch], cfg.max_len, side="right")
            loss = _loss(model, model.states(inputs, mask), targets, mask,
                         cfg.sampled_negatives, gen)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, steps = total + loss.item(), steps + 1
        return total / max(1, steps)

    result = fit_early_stopping(model, run_epoch, lambda: validate(scorer), cfg.epochs,
                                cfg.patience, on_epoch)
    return scorer, result
