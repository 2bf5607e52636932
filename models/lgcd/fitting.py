"""Fitting one LGCD variant: model construction, the training lock, timing and its record.

``fit`` sizes the model to the pre-trained encoders (a mismatch names the field to
set), initialises the item bias from real target counts, and trains with
``models.lgcd.training.train_lgcd`` under an exclusive lock on the checkpoint
folder, resuming from ``last.pt`` when a previous run was killed.
"""

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from models.lgcd.config import LGCDConfig
from models.lgcd.data import DIRECTIONS, SequenceRow, TrainBatches
from models.lgcd.model import LGCD
from models.lgcd.rows import target_counts
from models.lgcd.training import CandidateEvaluator, LGCDTrainResult, train_lgcd


class LGCDDataError(ValueError):
    """Inputs that cannot train LGCD (no rows, encoders of another size); says what to fix."""


class TrainingInProgressError(RuntimeError):
    """Another live process trains into the same checkpoint folder (e.g. an orphaned step)."""


@contextlib.contextmanager
def checkpoint_lock(checkpoint_dir: Path | None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``checkpoint_dir/lock`` while training.

    Killing a run's parent process can leave its step process training on; a rerun that
    resumed into the same folder would then race it on ``last.pt``. The kernel drops the
    lock when its holder dies, even by SIGKILL, so a crash never blocks the resume.
    """
    if checkpoint_dir is None:
        yield
        return
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    with open(checkpoint_dir / "lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            fh.seek(0)
            raise TrainingInProgressError(
                f"process {fh.read().strip() or '?'} is still training into {checkpoint_dir}; "
                "wait for it or kill it, then rerun (training resumes from last.pt)") from exc
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass
class LGCDFit:
    train: LGCDTrainResult
    steps_per_epoch: int
    train_seconds: float  # this call's optimisation time, validation excluded
    eval_seconds: float  # this call's validation time
    steps_this_call: int

    @property
    def steps_per_s(self) -> float:
        return self.steps_this_call / self.train_seconds if self.train_seconds > 0 else 0.0


class _TimedEvaluator:
    """Wraps the validation callback to separate its time from the training steps'."""

    def __init__(self, inner: Callable[[LGCD], dict[str, float]]):
        self.inner, self.seconds = inner, 0.0

    def __call__(self, model: LGCD) -> dict[str, float]:
        began = time.perf_counter()
        try:
            return self.inner(model)
        finally:
            self.seconds += time.perf_counter() - began


def build_model(cfg: LGCDConfig, encoders: Mapping[str, torch.nn.Module]) -> LGCD:
    """LGCD over the pre-trained encoders, seeded; a size mismatch says which field to set."""
    for dom, enc in encoders.items():
        d = enc.item_table().shape[1]
        enc_len = getattr(getattr(enc, "cfg", None), "max_len", cfg.max_len)
        if d != cfg.d or enc_len < cfg.max_len:
            raise LGCDDataError(f"lgcd.d={cfg.d}, lgcd.max_len={cfg.max_len} do not fit encoder "
                                f"{dom} (d={d}, max_len={enc_len}): the encoders were trained with "
                                "other sizes than encoder.d / encoder.max_len say; re-materialize "
                                "sequence_encoder_a and _b (lgcd.max_len may be at most encoder.max_len)")
    torch.manual_seed(cfg.seed)
    return LGCD(cfg, dict(encoders))


def fit(cfg: LGCDConfig, encoders: Mapping[str, torch.nn.Module], train: Sequence[SequenceRow],
        valid: Sequence[SequenceRow], device: torch.device, checkpoint_dir: Path | None = None,
        valid_negatives: int = 999, on_epoch: Callable[[dict[str, float]], None] | None = None,
        on_progress: Callable[[str], None] | None = None) -> tuple[LGCD, LGCDFit]:
    """Train one variant on ``device``, resuming from ``checkpoint_dir/last.pt`` if present."""
    if not train:
        raise LGCDDataError("no LGCD training rows: need real overlapping training users or "
                            "pseudo-overlap sequences")
    if not valid:
        raise LGCDDataError("no validation rows: the valid split is empty")
    missing = sorted(set(DIRECTIONS) - {r.direction for r in valid})
    if cfg.early_stopping == "per_direction" and missing:
        raise LGCDDataError(f"lgcd.early_stopping=per_direction needs validation users in both "
                            f"directions; the valid split has none for {', '.join(missing)}: "
                            "set lgcd.early_stopping: joint")
    model = build_model(cfg, encoders)
    n_items = {dom: int(enc.item_table().shape[0]) for dom, enc in encoders.items()}
    if cfg.item_bias:
        for direction, counts in target_counts(train, n_items).items():
            model.init_item_bias(direction, counts)
    model = model.to(device)
    evaluate = _TimedEvaluator(CandidateEvaluator(valid, n_items, valid_negatives, k=10,
                                                  seed=cfg.seed, max_len=cfg.max_len))
    batches = TrainBatches(train, cfg)
    began = time.perf_counter()
    with checkpoint_lock(checkpoint_dir):
        result = train_lgcd(model, batches, evaluate, checkpoint_dir, on_epoch, on_progress)
    epochs_now = len(result.history) - (result.resumed_from or 0)
    fit_result = LGCDFit(result, batches.steps_per_epoch,
                         time.perf_counter() - began - evaluate.seconds, evaluate.seconds,
                         epochs_now * batches.steps_per_epoch)
    model.load_state_dict(result.state_dict)
    return model.eval(), fit_result


def history_markdown(history: Sequence[Mapping[str, float]], best_epoch: int,
                     best_epochs: Mapping[str, int] | None = None) -> str:
    """Per-epoch losses and validation HR@10 / NDCG@10 (overall and per direction).

    The kept epoch is marked **best**, or, with ``best_epochs`` (early stopping per
    direction), each direction's own: **best A→B**.
    """
    keys = ["loss_total", "loss_diff", "loss_guess", "loss_align", "loss_rec", "hr@10",
            "ndcg@10", "ndcg@10/AB", "ndcg@10/BA"]
    heads = ["loss", "L_diff", "L_guess", "L_align", "L_rec", "HR@10", "NDCG@10", "NDCG@10 A→B",
             "NDCG@10 B→A"]
    for term in ("diff", "guess", "align", "rec"):  # gradient norms, where they were logged
        if any(f"gradnorm_{term}" in h for h in history):
            keys.append(f"gradnorm_{term}")
            heads.append(f"‖∇L_{term}‖")
    lines = ["| epoch | " + " | ".join(heads) + " | s |", "|" + "---:|" * (len(heads) + 2)]
    for h in history:
        if best_epochs:
            best = "".join(f" **best {d[0]}→{d[1]}**" for d, e in best_epochs.items()
                           if h["epoch"] == e)
        else:
            best = " **best**" if h["epoch"] == best_epoch else ""
        cells = [h.get(k, float("nan")) for k in keys]
        lines.append(f"| {h['epoch']}{best} | " + " | ".join(f"{c:.4f}" for c in cells)
                     + f" | {h.get('seconds', 0.0):.1f} |")
    return "\n".join(lines)
