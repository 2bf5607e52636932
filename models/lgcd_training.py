"""Training loop of LGCD: Adam, per-epoch validation, early stopping, crash-safe resume.

A plain loop in the style of nanoGPT's train.py. After every epoch it writes
``last.pt`` (model, optimizer, epoch, RNG states, history, best weights) with an
atomic rename; a run that finds ``last.pt`` continues after its epoch and, on
CPU, reproduces the uninterrupted run bit for bit, because the batches are a
pure function of (seed, epoch) and the RNG states are restored.

Validation is a callback ``evaluate(model) -> {"hr@10": ..., "ndcg@10": ...}``;
``CandidateEvaluator`` is the small default (target item against sampled
negatives of the target domain). Early stopping watches NDCG@10.
"""

import os
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from models.lgcd import LGCD
from models.lgcd_config import LGCDConfig
from models.lgcd_data import DIRECTIONS, SequenceRow, TrainBatches, collate
from models.metrics import hit_rate, ndcg, target_ranks

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
            negatives = (np.arange(n - 1) if n - 1 <= n_negatives
                         else rng.choice(n - 1, size=n_negatives, replace=False))
            negatives = negatives + (negatives >= r.target_item)  # skip the target
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
    best_epoch: int = 0  # 1-based
    best_metric: float = -1.0
    steps: int = 0
    resumed_from: int | None = None  # epochs already done when this call started
    stopped_early: bool = False


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def save_checkpoint(path: Path, payload: dict) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves a torn checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def train_lgcd(model: LGCD, batches: TrainBatches, evaluate: Evaluate,
               checkpoint_dir: Path | None = None,
               on_epoch: Callable[[dict[str, float]], None] | None = None) -> LGCDTrainResult:
    """Train ``model`` (already on its device) for up to cfg.epochs with early stopping.

    With ``checkpoint_dir`` the run resumes from ``last.pt`` when present; a checkpoint
    written under a different configuration is refused rather than silently mixed.
    Returns the best epoch's weights and the per-epoch history (losses, metrics, seconds).
    """
    cfg: LGCDConfig = model.cfg
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                 weight_decay=cfg.weight_decay)
    last = checkpoint_dir / "last.pt" if checkpoint_dir is not None else None
    result = LGCDTrainResult(state_dict=_cpu_state(model))
    start_epoch, stale, done = 0, 0, False
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        if last is not None and last.exists():
            # weights_only: the resume folder is a file on disk like any other, so untrusted
            try:
                ckpt = torch.load(last, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError as exc:
                raise ValueError(f"checkpoint {last} holds objects other than tensors and plain "
                                 "data; refused (delete it to start over)") from exc
            if ckpt["config"] != cfg.to_dict():
                raise ValueError(f"checkpoint {last} was written with another LGCD config; "
                                 "delete it to start over")
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            torch.set_rng_state(ckpt["rng"]["torch"])
            if device.type == "cuda" and "cuda" in ckpt["rng"]:
                torch.cuda.set_rng_state(ckpt["rng"]["cuda"], device)
            start_epoch, stale, done = ckpt["epoch"], ckpt["stale"], ckpt["done"]
            result.history, result.steps = ckpt["history"], ckpt["steps"]
            result.best_epoch, result.best_metric = ckpt["best_epoch"], ckpt["best_metric"]
            result.state_dict, result.resumed_from = ckpt["best_state"], start_epoch
            result.stopped_early = stale >= cfg.patience
        for epoch in range(start_epoch, cfg.epochs):
            if done:
                break
            began = time.perf_counter()
            model.train()
            sums: dict[str, torch.Tensor] = {}
            n_steps = 0
            for batch in batches.epoch(epoch):
                _, losses = model(batch.to(device))
                optimizer.zero_grad(set_to_none=True)
                losses["total"].backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                for name, value in losses.items():
                    sums[name] = sums.get(name, 0.0) + value.detach()
                n_steps += 1
            metrics = evaluate(model)
            if MONITOR not in metrics:
                raise KeyError(f"evaluate() must return {MONITOR!r}, got {sorted(metrics)}")
            record = {"epoch": epoch + 1, "seconds": time.perf_counter() - began,
                      **{f"loss_{k}": float(v) / max(1, n_steps) for k, v in sums.items()},
                      **metrics}
            result.history.append(record)
            result.steps += n_steps
            if metrics[MONITOR] > result.best_metric:
                result.best_metric, result.best_epoch, stale = metrics[MONITOR], epoch + 1, 0
                result.state_dict = _cpu_state(model)
            else:
                stale += 1
            done = stale >= cfg.patience or epoch + 1 == cfg.epochs
            result.stopped_early = stale >= cfg.patience
            if last is not None:
                save_checkpoint(last, {
                    "model": _cpu_state(model), "optimizer": optimizer.state_dict(),
                    "epoch": epoch + 1, "stale": stale, "done": done, "steps": result.steps,
                    "history": result.history, "best_epoch": result.best_epoch,
                    "best_metric": result.best_metric, "best_state": result.state_dict,
                    "rng": _rng_state(device), "config": cfg.to_dict()})
            if on_epoch is not None:
                on_epoch(record)
    return result
