"""Glue between the pipeline's tables and the LGCD model: stage config, rows, fitting, loading.

The ``lgcd:`` section of a dataset YAML becomes an ``LGCDStageConfig``: one base
``LGCDConfig`` (the paper's defaults, sized to the pre-trained encoders) plus the
list of variants to train, each a named preset of ``models.lgcd.config.VARIANTS``
with optional field overrides. Two knobs live here rather than in ``LGCDConfig``
because they select *data*: ``n_k`` (a variant keeps the nK best-ranked pseudo items
of the grounding stage, which retrieves the largest nK once) and ``overlap_ratio``
(the share of real overlapping training users kept, Figure 6).

A published checkpoint holds the LGCD-owned weights only (condition fusion, guessers,
denoisers, fusion heads, cross-domain ID maps); frozen pre-trained encoders stay in
their own checkpoints, named by content version in ``extra["encoder_versions"]``.
``lgcd_from_checkpoint`` rebuilds the model from it and the two encoders.
"""

import contextlib
import dataclasses
import fcntl
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from models.lgcd.config import VARIANTS, LGCDConfig
from models.lgcd.data import DIRECTIONS, SequenceRow, TrainBatches, collate, rows_from_records
from models.lgcd.model import LGCD
from models.lgcd.training import CandidateEvaluator, LGCDTrainResult, train_lgcd

ARCH = "lgcd-v2"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_MODEL_FIELDS = {f.name for f in dataclasses.fields(LGCDConfig)}


# Where a variant's pseudo-overlap users come from (none: only the real overlapping users
# train). retrieval: the LLM sample's users, grounded on their own source text instead of
# the LLM's guesses; retrieval_all: every single-domain user so (assets/grounding.py).
PSEUDO_SOURCES = ("llm", "retrieval", "retrieval_all", "none")


class LGCDDataError(ValueError):
    """Inputs that cannot train LGCD (no rows, encoders of another size); says what to fix."""


class TrainingInProgressError(RuntimeError):
    """Another live process trains into the same checkpoint folder (e.g. an orphaned step)."""


@dataclass(frozen=True)
class VariantSpec:
    """One model to train: a preset of ``VARIANTS`` plus field overrides, under ``name``."""

    name: str  # "full" -> asset lgcd_model, otherwise lgcd_model_<name>
    preset: str = "full"  # key of models.lgcd.config.VARIANTS
    overrides: dict[str, Any] = field(default_factory=dict)  # LGCDConfig fields
    overlap_ratio: float = 1.0  # share of real overlapping training users kept (Figure 6)
    pseudo_source: str = "llm"  # pseudo users: llm | retrieval | retrieval_all | none

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"variant name {self.name!r} must be snake_case ([a-z][a-z0-9_]*)")
        if self.preset not in VARIANTS:
            raise ValueError(f"variant {self.name!r}: unknown preset {self.preset!r}; "
                             f"allowed {sorted(VARIANTS)}")
        unknown = set(self.overrides) - _MODEL_FIELDS
        if unknown:
            raise ValueError(f"variant {self.name!r}: unknown fields {sorted(unknown)}")
        if self.pseudo_source not in PSEUDO_SOURCES:
            raise ValueError(f"variant {self.name!r}: pseudo_source={self.pseudo_source!r}; "
                             f"allowed {list(PSEUDO_SOURCES)}")
        if not 0.0 < self.overlap_ratio <= 1.0:
            raise ValueError(f"variant {self.name!r}: overlap_ratio={self.overlap_ratio}; "
                             "allowed (0, 1]")

    @classmethod
    def parse(cls, entry: Any) -> "VariantSpec":
        """A preset name (``wo_diffusion``) or a mapping ``{name, preset?, <field>: value}``."""
        if isinstance(entry, str):
            return cls(entry, entry)
        if not isinstance(entry, Mapping) or "name" not in entry:
            raise ValueError(f"variant {entry!r} must be a preset name or a mapping with 'name'")
        data = ("name", "preset", "overlap_ratio", "pseudo_source")
        rest = {k: v for k, v in entry.items() if k not in data}
        name = entry["name"]
        preset = entry.get("preset", name if name in VARIANTS else "full")
        return cls(name, preset, rest, float(entry.get("overlap_ratio", 1.0)),
                   str(entry.get("pseudo_source", "llm")))


@dataclass(frozen=True)
class LGCDStageConfig:
    """The ``lgcd:`` section: base model config, variants to train, device and validation."""

    model: LGCDConfig = field(default_factory=LGCDConfig)  # shared by every variant
    variants: tuple[VariantSpec, ...] = (VariantSpec("full"),)
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", "cuda:N"
    threads: int = 0  # torch CPU threads; 0 = the step's share of the cores (pipeline.executors)
    valid_negatives: int = 999  # sampled target-domain negatives per validation user
    max_valid_users: int | None = None  # seeded sample of the valid split; None = all

    def __post_init__(self) -> None:
        if not self.variants:
            raise ValueError("variants is empty; list at least one (e.g. [full])")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names repeat: {names}")
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"device={self.device!r}; use auto, cpu, cuda or cuda:N")
        if not isinstance(self.threads, int) or self.threads < 0:
            raise ValueError(f"threads={self.threads!r}; must be an integer >= 0")
        if not isinstance(self.valid_negatives, int) or self.valid_negatives < 1:
            raise ValueError(f"valid_negatives={self.valid_negatives!r}; must be >= 1")
        if self.max_valid_users is not None and self.max_valid_users < 1:
            raise ValueError(f"max_valid_users={self.max_valid_users}; must be >= 1 or null")
        for spec in self.variants:
            self.variant_config(spec)  # every variant must be a valid LGCDConfig

    def variant_config(self, spec: VariantSpec) -> LGCDConfig:
        """Base fields, then the preset's, then the variant's own overrides."""
        try:
            return LGCDConfig(**{**self.model.to_dict(), **VARIANTS[spec.preset],
                                 **spec.overrides})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"variant {spec.name!r}: {exc}") from exc

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], defaults: Mapping[str, Any]) -> "LGCDStageConfig":
        """Parse the YAML section; ``defaults`` (d, max_len, n_k) come from the upstream stages."""
        stage_keys = {"variants", "device", "threads", "valid_negatives", "max_valid_users"}
        unknown = set(raw) - stage_keys - _MODEL_FIELDS
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}; allowed "
                             f"{sorted(stage_keys | _MODEL_FIELDS)}")
        model_raw = {**defaults, **{k: v for k, v in raw.items() if k in _MODEL_FIELDS}}
        variants = raw.get("variants", ["full"])
        if not isinstance(variants, list):
            raise ValueError(f"variants must be a list, got {variants!r}")
        return cls(model=LGCDConfig(**model_raw),
                   variants=tuple(VariantSpec.parse(v) for v in variants),
                   **{k: raw[k] for k in stage_keys - {"variants"} if k in raw})


# ---------------------------------------------------------------- rows


def _keep_top_pseudo(rec: dict, n_k: int) -> dict:
    """Drop the pseudo items ranked below n_k (``pseudo_items`` is in retrieval order)."""
    budget = Counter(rec["pseudo_items"][:n_k])
    parts = []
    for i, d, p in zip(rec["items"], rec["domains"], rec["is_pseudo"], strict=True):
        if p and budget[i] <= 0:
            continue
        budget[i] -= p
        parts.append((i, d, p))
    return {**rec, "items": [i for i, _, _ in parts], "domains": [d for _, d, _ in parts],
            "is_pseudo": [p for _, _, p in parts]}


def training_rows(sequences: pl.DataFrame, pseudo: pl.DataFrame | None, n_k: int,
                  overlap_ratio: float = 1.0, seed: int = 0
                  ) -> tuple[list[SequenceRow], list[tuple[str, str]]]:
    """Real overlapping training users (a seeded ``overlap_ratio`` share) plus pseudo users.

    ``pseudo`` None (``pseudo_source: none``): real overlapping users only.

    Returns the rows and the (user, reason) of records that cannot train (e.g. no real
    source item); the caller reports them instead of failing on a handful of users.
    """
    overlap = sequences.filter((pl.col("split") == "train") & (pl.col("kind") == "overlap"))
    overlap = overlap.sort("user")
    if overlap_ratio < 1.0 and overlap.height:
        keep = max(1, round(overlap_ratio * overlap.height))
        picked = np.sort(np.random.default_rng([seed, 5]).permutation(overlap.height)[:keep])
        overlap = overlap[picked]
    skipped: list[tuple[str, str]] = []
    rows = rows_from_records(overlap.iter_rows(named=True), skipped)
    if pseudo is not None:
        pseudo_recs = (_keep_top_pseudo(r, n_k)
                       for r in pseudo.sort("user").iter_rows(named=True))
        rows += rows_from_records(pseudo_recs, skipped)
    return rows, skipped


def validation_rows(sequences: pl.DataFrame, max_users: int | None = None, seed: int = 0
                    ) -> tuple[list[SequenceRow], list[tuple[str, str]]]:
    """Rows of the valid split (cold-start users: source history, target item)."""
    valid = sequences.filter(pl.col("split") == "valid").sort("user")
    if max_users is not None and valid.height > max_users:
        picked = np.sort(np.random.default_rng([seed, 6]).permutation(valid.height)[:max_users])
        valid = valid[picked]
    skipped: list[tuple[str, str]] = []
    return rows_from_records(valid.iter_rows(named=True), skipped), skipped


def target_counts(rows: Sequence[SequenceRow], n_items: Mapping[str, int]
                  ) -> dict[str, torch.Tensor]:
    """Per direction, how often each target item is a real target-domain interaction (N_tgt,).

    Real overlap users' target histories and targets count; pseudo rows only where a
    direction has no real overlap user, since their items are LLM guesses.
    """
    out = {}
    for direction in {r.direction for r in rows}:
        tgt = direction[1]
        mine = [r for r in rows if r.direction == direction]
        real = [r for r in mine if r.kind == "overlap"] or mine
        counts = np.zeros(n_items[tgt], dtype=np.float64)
        for r in real:
            counts[r.target_item] += 1
            for i, d, p in zip(r.items, r.domains, r.is_pseudo, strict=True):
                if d == tgt and not p:
                    counts[i] += 1
        out[direction] = torch.from_numpy(counts).float()
    return out


# ---------------------------------------------------------------- device and fitting


def auto_threads() -> int:
    """Half the cores, at least one: the model's small matmuls lose to thread contention."""
    return max(1, (os.cpu_count() or 2) // 2)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[int]:
    """Run with ``n`` torch CPU threads (0 = ``auto_threads()``), then restore the old count."""
    before = torch.get_num_threads()
    n = n or auto_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


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
class FitResult:
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
                                f"{dom} (d={d}, max_len={enc_len}); set lgcd.d to encoder.d and "
                                "lgcd.max_len at most encoder.max_len")
    torch.manual_seed(cfg.seed)
    return LGCD(cfg, dict(encoders))


def fit(cfg: LGCDConfig, encoders: Mapping[str, torch.nn.Module], train: Sequence[SequenceRow],
        valid: Sequence[SequenceRow], device: torch.device, checkpoint_dir: Path | None = None,
        valid_negatives: int = 999, on_epoch: Callable[[dict[str, float]], None] | None = None,
        on_progress: Callable[[str], None] | None = None) -> tuple[LGCD, FitResult]:
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
    fit_result = FitResult(result, batches.steps_per_epoch,
                           time.perf_counter() - began - evaluate.seconds, evaluate.seconds,
                           epochs_now * batches.steps_per_epoch)
    model.load_state_dict(result.state_dict)
    return model.eval(), fit_result


# ---------------------------------------------------------------- checkpoints and scoring


def _own_state(model: LGCD) -> dict[str, torch.Tensor]:
    """Weights LGCD trained: all of them when fine-tuning, else everything but the encoders."""
    keep_encoders = model.cfg.finetune_encoders
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()
            if keep_encoders or not k.startswith("encoders.")}


def checkpoint_parts(model: LGCD, fit_result: FitResult, spec: VariantSpec,
                     encoder_versions: Mapping[str, str], rows: Mapping[str, int]
                     ) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """(state_dict, config, extra) for ``pipeline.storage.Checkpoint``; JSON-only config/extra.

    Wall-clock times and ``resumed_from`` stay out, so the content version depends on the
    weights and the training record only: a resumed run publishes the same version as an
    uninterrupted one.
    """
    res = fit_result.train
    history = [{k: v for k, v in h.items() if k != "seconds"} for h in res.history]
    extra = {"arch": ARCH, "variant": spec.name, "preset": spec.preset,
             "overrides": dict(spec.overrides), "overlap_ratio": spec.overlap_ratio,
             "pseudo_source": spec.pseudo_source,
             "encoder_versions": dict(encoder_versions), "history": history,
             "best_epoch": res.best_epoch, "best_epochs": dict(res.best_epochs),
             "best_ndcg10": res.best_metric, "steps": res.steps,
             "stopped_early": res.stopped_early, "rows": dict(rows)}
    return _own_state(model), model.cfg.to_dict(), extra


def lgcd_from_checkpoint(state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any],
                         encoders: Mapping[str, torch.nn.Module]) -> LGCD:
    """Rebuild a trained LGCD (eval mode, CPU) from a checkpoint and its two encoders.

    ``encoders`` are the pre-trained ``DomainEncoder``s the model was trained on; with
    ``finetune_encoders`` the checkpoint overwrites their weights with the fine-tuned ones.
    """
    cfg = LGCDConfig.from_dict(dict(config))
    model = LGCD(cfg, dict(encoders))
    missing, unexpected = model.load_state_dict(dict(state_dict), strict=False)
    if unexpected or any(not k.startswith("encoders.") for k in missing):
        raise ValueError(f"LGCD checkpoint does not fit: missing {sorted(missing)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]}")
    return model.eval()


@torch.no_grad()
def score_rows(model: LGCD, rows: Sequence[SequenceRow], candidates: np.ndarray | None = None,
               seed: int = 0, batch_size: int = 256) -> np.ndarray:
    """Scores of each row's candidates (R, C), or of the whole target catalog when None.

    Rows may mix directions; the reverse process draws its noise from one generator seeded
    with ``seed``, so a call is reproducible. Full-catalog scores need one target domain.
    """
    if candidates is None and len({r.target_domain for r in rows}) > 1:
        raise ValueError("full-catalog scores of rows with different target domains differ in "
                         "width; score each target domain separately")
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    out: list[np.ndarray | None] = [None] * len(rows)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        for direction, b in collate(chunk, max_len=model.cfg.max_len).to(device).paths.items():
            pos = [start + int(i) for i in b.row.cpu()]
            cand = None if candidates is None else torch.from_numpy(
                np.asarray(candidates)[pos]).long().to(device)  # (B, C)
            scores = model.score(direction, b, cand, generator=gen).cpu().numpy()
            for p, s in zip(pos, scores, strict=True):
                out[p] = s
    return np.stack(out) if rows else np.zeros((0, 0), dtype=np.float32)


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
