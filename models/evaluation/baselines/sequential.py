"""SASRec and GRU4Rec over one joint item vocabulary of both domains, aligned to the cross-domain task.

SASRec (Kang & McAuley, ICDM 2018) reuses the causal pre-LayerNorm blocks of the
domain encoders (models/encoders/sequence.py); GRU4Rec (Hidasi et al., ICLR 2016)
is a GRU over item embeddings. Scores are dot products with the shared input
item embeddings.

Two kinds of training examples make one epoch:

* next-item prediction at every position of every training sequence
  (single-domain and overlapping users, overlap targets included), the paper's
  "trained on the identical dataset" setting;
* with ``aligned`` (default), the test task itself: for each overlapping
  training user and each of its target-domain items, the user's *source-only*
  history before that item predicts it, scored over the target domain only.
  Without these the models learn the general next-item prior (85% of the
  Food-Kitchen sequences are single-domain) and never see a source-only history
  followed by a target item, which is all a cold-start test user has.

Loss: softmax cross-entropy over the whole vocabulary (or the target domain)
when it has at most ``full_softmax_max_items`` items; above it the logQ-corrected
sampled softmax of models/losses.py. A cold-start user is scored from the
history exactly as stored (source-domain only under the strict policy) against
target-domain rows of the table.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.encoders.sequence import CausalEncoder, EncoderConfig, last_real, pad_sequences
from models.evaluation.baselines.common import BaselineFit, Interactions, JointVocab, fit_with_loop, scores_for
from models.evaluation.config import SequentialConfig
from models.evaluation.ranking import EvalUser
from models.losses import check_negatives, sampled_next_item_loss, target_frequencies

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


@dataclass(frozen=True)
class Examples:
    """One kind of training example as right-padded tensors.

    ``inputs`` (S, L) joint ids, ``lengths`` (S,) real inputs per row, ``targets`` (S, L)
    the label at each position as an index into ``vocab`` (the slice of the joint
    vocabulary it is scored over), ``labelled`` (S, L) where a position has a label.
    """

    inputs: Tensor
    lengths: Tensor
    targets: Tensor
    labelled: Tensor
    vocab: slice

    def __len__(self) -> int:
        return self.inputs.shape[0]


def _pack(inputs: list[list[int]], labels: list[list[int]], vocab: slice) -> Examples:
    """Rows of (input ids, label per position; -1 = none) as padded tensors."""
    x, _ = pad_sequences(inputs, max(len(i) for i in inputs), side="right")  # (S, L)
    y = torch.full_like(x, -1)
    for row, t in enumerate(labels):
        y[row, :len(t)] = torch.tensor(t, dtype=torch.long)
    lengths = torch.tensor([len(i) for i in inputs])
    return Examples(x, lengths, y.clamp_min(0), y >= 0, vocab)


def next_item_examples(train: Interactions, vocab: JointVocab, max_len: int) -> Examples:
    """Every position of every training sequence predicts the next item of either domain."""
    seqs = [vocab.ids(i, d)[-(max_len + 1):]
            for i, d in zip(train.items, train.domains, strict=True) if len(i) >= 2]
    if not seqs:
        raise ValueError("no training sequence has two or more items")
    return _pack([s[:-1] for s in seqs], [s[1:] for s in seqs], slice(0, vocab.size))


def aligned_examples(train: Interactions, vocab: JointVocab, max_len: int, target: str
                     ) -> Examples | None:
    """Source-only histories of overlapping users -> each next target-domain item.

    One row per (user, target domain): the user's source items in order, up to the last
    one followed by a target item (at most ``max_len``). At the position of the last
    source item before a target item, that item is the label (the latest wins when
    several follow one source item). Labels are per-domain indices, scored over the
    target domain's slice only.
    """
    source = "B" if target == "A" else "A"
    inputs, labels = [], []
    for items, doms, overlap in zip(train.items, train.domains, train.overlap, strict=True):
        if not overlap:
            continue
        src, lab = [], {}
        for i, d in zip(items, doms, strict=True):
            if d == source:
                src.append(vocab.offset[source] + i)
            elif src:  # a target item after at least one source item
                lab[len(src) - 1] = i
        if not lab:
            continue
        src = src[:max(lab) + 1]  # source items after the last target item predict nothing
        cut = max(0, len(src) - max_len)
        row = [-1] * (len(src) - cut)
        for pos, item in lab.items():
            if pos >= cut:
                row[pos - cut] = item
        if any(t >= 0 for t in row):
            inputs.append(src[cut:])
            labels.append(row)
    return _pack(inputs, labels, vocab.domain_slice(target)) if inputs else None


class _Loss:
    """Cross-entropy over an example kind's vocabulary slice; sampled above the threshold."""

    def __init__(self, kinds: list[Examples], cfg: SequentialConfig, seed: int):
        self.cfg, self.generator = cfg, torch.Generator().manual_seed(seed)
        self.freq: dict[int, Tensor] = {}
        for ex in kinds:
            size = ex.vocab.stop - ex.vocab.start
            if size > cfg.full_softmax_max_items:
                check_negatives(cfg.sampled_negatives, size,
                                "evaluation.sequential.sampled_negatives")
                self.freq[id(ex)] = target_frequencies(ex.targets[ex.labelled].tolist(), size)

    def __call__(self, model: nn.Module, ex: Examples, idx: Tensor) -> Tensor:
        width = int(ex.lengths[idx].max())
        inputs = ex.inputs[idx, :width]  # (B, W)
        mask = torch.arange(width)[None, :] < ex.lengths[idx][:, None]  # (B, W)
        states = model.states(inputs, mask)  # (B, W, d)
        lab = ex.labelled[idx, :width] & mask
        h, pos = states[lab], ex.targets[idx, :width][lab]  # (P, d), (P,) within the slice
        table = model.item_emb.weight[ex.vocab]  # (N_slice, d)
        freq = self.freq.get(id(ex))
        if freq is None:
            return F.cross_entropy((h @ table.T).float(), pos)
        return sampled_next_item_loss(h, pos, lambda c: table[c], freq,
                                      self.cfg.sampled_negatives, self.generator)


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


def _epoch_batches(kinds: list[Examples], batch_size: int, seed: int, epoch: int
                   ) -> list[tuple[Examples, Tensor]]:
    """One pass over every kind's rows: length-bucketed batches of each, interleaved by seed."""
    rng = np.random.default_rng([seed, epoch])
    batches = [(ex, torch.from_numpy(idx)) for ex in kinds
               for idx in _length_buckets(ex.lengths.numpy(), batch_size, rng)]
    return [batches[i] for i in rng.permutation(len(batches))]


def train_sequential(kind: str, train: Interactions, vocab: JointVocab, cfg: SequentialConfig,
                     seed: int, validate: Callable[[SequentialScorer], float],
                     on_epoch: Callable[[dict[str, float]], None] | None = None,
                     on_progress: Callable[[str], None] | None = None
                     ) -> tuple[SequentialScorer, BaselineFit]:
    """Train one model with ``seed``; early stopping on ``validate(scorer)`` (NDCG@10)."""
    torch.manual_seed(seed)
    model = build(kind, vocab.size, cfg)
    scorer = SequentialScorer(model, vocab, cfg.max_len)
    try:
        kinds = [next_item_examples(train, vocab, cfg.max_len)]
    except ValueError as exc:
        raise ValueError(f"{kind}: {exc}") from exc
    if cfg.aligned:
        kinds += [ex for t in ("A", "B") if (ex := aligned_examples(train, vocab, cfg.max_len, t))]
    loss = _Loss(kinds, cfg, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps = len(_epoch_batches(kinds, cfg.batch_size, seed, 0))
    result = fit_with_loop(model, optimizer,
                           lambda e: _epoch_batches(kinds, cfg.batch_size, seed, e),
                           lambda b: loss(model, *b), lambda: validate(scorer), cfg.loop(),
                           seed=seed, steps_per_epoch=steps, name=kind, on_epoch=on_epoch,
                           on_progress=on_progress)
    return scorer, result
