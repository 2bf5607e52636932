"""The bag-of-source-items floor: what a learned cross-domain model must at least beat.

A user is the mean of the embeddings of its source-domain items (order ignored),
mapped by one linear layer into the target space and scored against learned
target-item embeddings plus a per-item bias (the bias carries target popularity
among overlapping users). Trained only on overlapping training users, on the
test task: all of a user's source items -> each of its target-domain items, with
softmax cross-entropy over the target domain (logQ-corrected sampled softmax on
catalogs above ``full_softmax_max_items``), early-stopped on the stored
validation lists. It trains in about a minute on two cores; a sequential or
diffusion model that scores below it is undertrained or misaligned.
"""

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.evaluation.baselines.common import BaselineFit, Interactions, fit_with_loop
from models.evaluation.baselines.popularity import Popularity
from models.evaluation.config import BagConfig
from models.evaluation.ranking import EvalUser
from models.losses import check_negatives, sampled_next_item_loss, target_frequencies

DIRECTIONS = ("AB", "BA")


class BagTower(nn.Module):
    """One direction s -> t: EmbeddingBag(mean) over source items, a map, target table + bias."""

    def __init__(self, n_source: int, n_target: int, cfg: BagConfig):
        super().__init__()
        self.source = nn.EmbeddingBag(n_source, cfg.d, mode="mean")
        self.map = nn.Linear(cfg.d, cfg.d)
        self.drop = nn.Dropout(cfg.dropout)
        self.target = nn.Embedding(n_target, cfg.d)
        self.bias = nn.Parameter(torch.zeros(n_target))
        for emb in (self.source, self.target):
            nn.init.normal_(emb.weight, std=0.05)

    def user(self, flat: Tensor, offsets: Tensor) -> Tensor:
        """Flattened source items (T,) with bag starts (B,) -> user vectors (B, d)."""
        return self.map(self.drop(self.source(flat, offsets)))


class Bag(nn.Module):
    def __init__(self, n_items: dict[str, int], cfg: BagConfig,
                 log_prior: dict[str, Tensor] | None = None):
        super().__init__()
        self.towers = nn.ModuleDict({s + t: BagTower(n_items[s], n_items[t], cfg)
                                     for s, t in DIRECTIONS})
        for (_, t), tower in zip(DIRECTIONS, self.towers.values(), strict=True):
            if log_prior is not None:
                with torch.no_grad():
                    tower.bias.copy_(log_prior[t])


def _bags(histories: Sequence[list[int]]) -> tuple[Tensor, Tensor]:
    flat = torch.tensor([i for h in histories for i in h], dtype=torch.long)
    offsets = torch.tensor(np.cumsum([0] + [len(h) for h in histories[:-1]]), dtype=torch.long)
    return flat, offsets


def bag_examples(train: Interactions) -> dict[str, tuple[list[list[int]], list[int]]]:
    """Direction -> (source histories, target items): one pair per target item of a user."""
    out: dict[str, tuple[list[list[int]], list[int]]] = {d: ([], []) for d in DIRECTIONS}
    for items, doms, overlap in zip(train.items, train.domains, train.overlap, strict=True):
        if not overlap:
            continue
        for s, t in DIRECTIONS:
            src = [i for i, d in zip(items, doms, strict=True) if d == s]
            if not src:
                continue
            for i, d in zip(items, doms, strict=True):
                if d == t:
                    out[s + t][0].append(src)
                    out[s + t][1].append(i)
    return out


class BagScorer:
    """The ``Scorer`` protocol: source bag -> target-item scores."""

    def __init__(self, model: Bag):
        self.model = model

    @torch.no_grad()
    def score(self, users: Sequence[EvalUser], target_domain: str,
              candidates: Tensor | None) -> Tensor:
        self.model.eval()
        src = "B" if target_domain == "A" else "A"
        tower = self.model.towers[src + target_domain]
        h = tower.user(*_bags([u.source_items() or [0] for u in users]))  # (B, d)
        if candidates is None:
            return h @ tower.target.weight.T + tower.bias  # (B, N_t)
        return torch.einsum("bd,bcd->bc", h, tower.target(candidates)) + tower.bias[candidates]


def train_bag(train: Interactions, n_items: dict[str, int], cfg: BagConfig, seed: int,
              validate: Callable[[BagScorer], float],
              on_epoch: Callable[[dict[str, float]], None] | None = None
              ) -> tuple[BagScorer, BaselineFit]:
    """Fit both directions with ``seed``; early stopping on ``validate`` (NDCG@10)."""
    examples = bag_examples(train)
    if not any(targets for _, targets in examples.values()):
        raise ValueError("bag: no overlapping training user has items in both domains")
    torch.manual_seed(seed)
    # the item bias starts at the log-popularity among every training user, so the model
    # starts from the popularity ranking and learns what the source items add to it
    counts = Popularity.fit(train, n_items).counts
    model = Bag(n_items, cfg, {d: torch.log1p(c).float() for d, c in counts.items()})
    scorer = BagScorer(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    freq, generator = {}, torch.Generator().manual_seed(seed)
    for (s, t), (_, targets) in zip(DIRECTIONS, examples.values(), strict=True):
        if n_items[t] > cfg.full_softmax_max_items and targets:
            check_negatives(cfg.sampled_negatives, n_items[t], "evaluation.bag.sampled_negatives")
            freq[s + t] = target_frequencies(targets, n_items[t])

    def epoch_batches(epoch: int) -> list[tuple[str, np.ndarray]]:
        rng = np.random.default_rng([seed, epoch])
        out = []
        for direction, (_, targets) in examples.items():
            order = rng.permutation(len(targets))
            out += [(direction, order[i:i + cfg.batch_size])
                    for i in range(0, len(order), cfg.batch_size)]
        return [out[i] for i in rng.permutation(len(out))]

    def loss(batch: tuple[str, np.ndarray]) -> Tensor:
        direction, idx = batch
        histories, targets = examples[direction]
        tower = model.towers[direction]
        h = tower.user(*_bags([histories[i] for i in idx]))  # (B, d)
        pos = torch.tensor([targets[i] for i in idx], dtype=torch.long)  # (B,)
        if direction not in freq:
            return F.cross_entropy(h @ tower.target.weight.T + tower.bias, pos)
        return sampled_next_item_loss(h, pos, tower.target, freq[direction],
                                      cfg.sampled_negatives, generator, tower.bias)

    steps = len(epoch_batches(0))
    result = fit_with_loop(model, optimizer, epoch_batches, loss, lambda: validate(scorer),
                           cfg.loop(), seed=seed, steps_per_epoch=steps, name="bag",
                           on_epoch=on_epoch)
    return scorer, result
