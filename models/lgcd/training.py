"""Training of LGCD through the shared loop (models/train.py), and its validation.

Adam over the trainable weights, validation after every epoch, early stopping
on NDCG@10, and crash-safe resume from ``last.pt`` (model, optimizer, epoch,
RNG states, history, best weights, written with an atomic rename after every
validation); on CPU a resumed run reproduces the uninterrupted one bit for bit,
because the batches are a pure function of (seed, epoch) and the RNG states are
restored. LGCD trains in fp32: its diffusion losses are not yet checked in bf16.

Validation is a callback ``evaluate(model) -> {"hr@10": ..., "ndcg@10": ...}``;
``CandidateEvaluator`` is the small default (target item against sampled
negatives of the target domain). Early stopping watches NDCG@10: of both directions
together (``early_stopping="joint"``), or of each on its own (``"per_direction"``): over
frozen encoders the two transfer paths share no trainable weight, so each keeps the weights
of its own best epoch and the assembled model is validated once more.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from models.lgcd.config import LGCDConfig
from models.lgcd.data import DIRECTIONS, SequenceRow, TrainBatches, collate
from models.lgcd.model import LGCD
from models.metrics import hit_rate, ndcg, target_ranks
from models.sampling import sample_negatives
from models.train import LoopConfig, train_loop

MONITOR = "ndcg@10"
Evaluate = Callable[[LGCD], dict[str, float]]


class CandidateEvaluator:
    """HR@k and NDCG@k of eval rows: the target against ``n_negatives`` sampled target items.

    Candidates are drawn once from ``seed`` (target in column 0, negatives without
    replacement and without the target; all items when the catalog is smaller), and the
    reverse process draws its noise from a generator seeded the same way, so two calls on
    the same weights give the same numbers. Keys: "hr@k", "ndcg@k" and per direction
    "hr@k/AB", ... over directions that have rows.
    """

    def __init__(self, rows: Sequence[SequenceRow], n_items: Mapping[str, int],
                 n_negatives: int = 999, k: int = 10, seed: int = 0, batch_size: int = 256,
                 max_len: int = 50):
        self.rows, self.k, self.seed = list(rows), k, seed
        self.batch_size, self.max_len = batch_size, max_len
        rng = np.random.default_rng([seed, 11])
        self.candidates = []
        for r in self.rows:
            n = n_items[r.target_domain]
            if not 0 <= r.target_item < n:
                raise ValueError(f"user {r.user}: target item {r.target_item} outside the "
                                 f"{n} items of domain {r.target_domain}")
            negatives = sample_negatives(rng, n, r.target_item, n_negatives)
            self.candidates.append(np.concatenate([[r.target_item], negatives]).astype(np.int64))

    @torch.no_grad()
    def __call__(self, model: LGCD) -> dict[str, float]:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        gen = torch.Generator(device=device).manual_seed(self.seed)
        ranks: dict[str, list[torch.Tensor]] = {d: [] for d in DIRECTIONS}
        for start in range(0, len(self.rows), self.batch_size):
            chunk = self.rows[start:start + self.batch_size]
            for direction, b in collate(chunk, max_len=self.max_len).to(device).paths.items():
                cand = torch.from_numpy(np.stack([self.candidates[start + int(i)]
                                                  for i in b.row.cpu()])).to(device)  # (B, C)
                scores = model.score(direction, b, cand, generator=gen)  # (B, C)
                zeros = torch.zeros(len(b), dtype=torch.long, device=device)
                ranks[direction].append(target_ranks(scores, zeros).cpu())
        model.train(was_training)
        out: dict[str, float] = {}
        parts = [torch.cat(v) for v in ranks.values() if v]
        every = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)
        out[f"hr@{self.k}"], out[f"ndcg@{self.k}"] = hit_rate(every, self.k), ndcg(every, self.k)
        for direction, v in ranks.items():
            if v:
                r = torch.cat(v)
                out[f"hr@{self.k}/{direction}"] = hit_rate(r, self.k)
                out[f"ndcg@{self.k}/{direction}"] = ndcg(r, self.k)
        return out


@dataclass
class LGCDTrainResult:
    state_dict: dict[str, torch.Tensor]  # best epoch's weights, on CPU
    history: list[dict[str, float]] = field(default_factory=list)  # one dict per epoch
    best_epoch: int = 0  # 1-based; per direction, the later of the two
    best_metric: float = -1.0
    selected: dict[str, float] = field(default_factory=dict)  # validation of state_dict
    best_epochs: dict[str, int] = field(default_factory=dict)  # per direction, if selected so
    steps: int = 0
    resumed_from: int | None = None  # epochs (validations) done when this call started
    stopped_early: bool = False


def loss_grad_norms(model: LGCD, batch) -> dict[str, float]:
    """L2 norm of each weighted loss term's gradient over the trainable weights.

    Logged once per validation ("gradnorm_diff", ...), because the terms' scales decide
    what trains: with squared norms summed over d, L_align's gradient was 3,800 times
    L_rec's at step 1. The forward runs in a forked RNG, so logging changes no result.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        _, losses = model(batch.to(device))
    weights, out = model.cfg.loss_weights(), {}
    for name in model.cfg.active_losses():
        term = weights[name] * losses[name]
        if not term.requires_grad:
            continue
        grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        out[f"gradnorm_{name}"] = float(torch.sqrt(sum(g.pow(2).sum() for g in grads
                                                       if g is not None)))
    return out


def train_lgcd(model: LGCD, batches: TrainBatches, evaluate: Evaluate,
               checkpoint_dir: Path | None = None,
               on_epoch: Callable[[dict[str, float]], None] | None = None,
               on_progress: Callable[[str], None] | None = None) -> LGCDTrainResult:
    """Train ``model`` (already on its device) for up to cfg.epochs with early stopping.

    With ``checkpoint_dir`` the run resumes from ``last.pt`` when present; a checkpoint
    written under a different configuration is refused rather than silently mixed.
    Returns the best epoch's weights and the per-epoch history (losses, metrics, seconds).
    """
    cfg: LGCDConfig = model.cfg
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                 weight_decay=cfg.weight_decay)
    # over frozen encoders the two paths share no trainable weight: two models in one loop
    parts = tuple((f"paths.{d}.", f"{MONITOR}/{d}") for d in DIRECTIONS
                  if cfg.early_stopping == "per_direction")
    loop = LoopConfig(epochs=cfg.epochs, patience=cfg.patience, grad_clip=cfg.grad_clip,
                      precision="fp32", monitor=MONITOR, parts=parts)
    res = train_loop(model, optimizer, batches.epoch, lambda b: model(b.to(device))[1],
                     lambda: evaluate(model), loop, seed=cfg.seed,
                     steps_per_epoch=batches.steps_per_epoch, name="LGCD",
                     checkpoint_dir=checkpoint_dir, fingerprint=cfg.to_dict(), on_eval=on_epoch,
                     on_progress=on_progress, device=device,
                     probe=lambda b: loss_grad_norms(model, b))
    return LGCDTrainResult(state_dict=res.state_dict, history=res.history,
                           best_epoch=int(res.best_epoch), best_metric=res.best_metric,
                           selected=res.selected,
                           best_epochs={p.split(".")[1]: int(e) for p, e in res.part_epochs.items()},
                           steps=res.steps, resumed_from=res.resumed_from,
                           stopped_early=res.stopped_early)
