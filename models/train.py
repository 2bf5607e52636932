"""The one training loop of every learned model: encoders, LGCD, SASRec, GRU4Rec, EMCDR, bag.

Why one loop. Each model used to carry its own early-stopping loop, and each had
its own idea of an epoch, of when to validate and of what to keep; a model that
scored below a floor could not be told apart from a loop that stopped it too
early. Here every model supplies three functions and gets the same behaviour:

* ``batches(epoch)``: the batches of one pass over the model's real training
  examples (0-based epoch). It must be a pure function of (seed, epoch), so a
  resumed run sees the same batches as an uninterrupted one.
* ``loss_fn(batch)``: a scalar loss, or a dict of named terms with ``"total"``.
* ``validate()``: metrics on the whole validation split; ``cfg.monitor``
  (NDCG@10) decides the best weights and patience.

What the loop provides: validation every ``eval_every`` steps (0: after every
epoch), patience counted in validations, the best weights restored at the end,
crash-safe resume from ``last.pt`` (written after every validation with an
atomic rename; on CPU a resumed run is bit-identical to an uninterrupted one),
a progress line at most every ``progress_every_s`` seconds (step, loss,
steps/s, ETA), a history row per validation for the curves, bf16 autocast where
the CPU computes bf16 natively, and a stop with the step and the loss terms
named when a loss turns NaN or infinite (nothing is published then).
"""

import contextlib
import math
import os
import pickle
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from models.device import autocast_dtype

PRECISIONS = ("auto", "fp32", "bf16")
PROBE = "probe."  # key prefix that keeps a probe's values apart from the loss sums


class TrainingDivergedError(RuntimeError):
    """A loss became NaN or infinite; the message names the model, step and loss terms."""


@dataclass(frozen=True)
class LoopConfig:
    """How long and how often: each model's config owns these values and passes them here."""

    epochs: int  # upper bound on passes over the training examples
    patience: int  # validations without a better monitor value before stopping
    eval_every: int = 0  # optimizer steps between validations; 0 = after every epoch
    grad_clip: float = 0.0  # max global gradient norm; 0 = no clipping
    precision: str = "auto"  # autocast: "auto" (bf16 where native), "fp32", "bf16"
    monitor: str = "ndcg@10"  # validation metric to maximize
    progress_every_s: float = 30.0  # at most this long between progress lines
    # (parameter-name prefix, monitor key) of independent parts that keep their own best
    # weights; () selects the whole model by ``monitor``. See ``train_loop``.
    parts: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for name in ("epochs", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}={value!r}; must be an integer >= 1")
        if not isinstance(self.eval_every, int) or self.eval_every < 0:
            raise ValueError(f"eval_every={self.eval_every!r}; must be an integer >= 0")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r}; allowed {list(PRECISIONS)}")
        if self.grad_clip < 0:
            raise ValueError(f"grad_clip={self.grad_clip!r}; must be >= 0")
        prefixes = [p for p, _ in self.parts]
        if len(set(prefixes)) != len(prefixes) or any(
                a != b and a.startswith(b) for a in prefixes for b in prefixes):
            raise ValueError(f"parts={self.parts!r}; prefixes must be distinct and disjoint")


@dataclass
class LoopResult:
    state_dict: dict[str, Tensor]  # best validation's weights, on CPU
    history: list[dict[str, float]] = field(default_factory=list)  # one row per validation
    best_epoch: float = 0  # "epoch" of the best row (an int when validating per epoch)
    best_metric: float = -math.inf
    steps: int = 0  # optimizer steps over all calls (resumed runs included)
    steps_per_epoch: int = 0
    resumed_from: int | None = None  # validations already done when this call started
    stopped_early: bool = False
    train_seconds: float = 0.0  # this call's optimisation time, validation excluded
    eval_seconds: float = 0.0  # this call's validation time
    steps_this_call: int = 0
    precision: str = "fp32"
    selected: dict[str, float] = field(default_factory=dict)  # validation of the returned weights
    part_best: dict[str, float] = field(default_factory=dict)  # prefix -> its best monitor
    part_epochs: dict[str, float] = field(default_factory=dict)  # prefix -> its best "epoch"

    @property
    def steps_per_s(self) -> float:
        return self.steps_this_call / self.train_seconds if self.train_seconds > 0 else 0.0


def cpu_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def save_checkpoint(path: Path, payload: dict) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves a torn checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    """``last.pt`` with ``weights_only=True``: the resume folder is untrusted like any file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(f"checkpoint {path} holds objects other than tensors and plain data; "
                         "refused (delete it to start over)") from exc


def _terms(out: Tensor | Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {"total": out} if isinstance(out, Tensor) else dict(out)


def _check_finite(name: str, terms: dict[str, Tensor], step: int, epoch: int) -> None:
    if bool(torch.isfinite(terms["total"].detach())):
        return
    values = ", ".join(f"{k}={float(v.detach()):.6g}" for k, v in terms.items())
    raise TrainingDivergedError(f"{name}: the loss became non-finite at step {step} (epoch "
                                f"{epoch + 1}): {values}; lower the learning rate or check the "
                                "inputs; no checkpoint was published")


class _Clock:
    """Rate-limited progress lines: step, loss, steps/s and the ETA of the step budget."""

    def __init__(self, name: str, every_s: float, total_steps: int,
                 emit: Callable[[str], None] | None):
        self.name, self.every_s, self.total, self.emit = name, every_s, total_steps, emit
        self.began = self.last = time.perf_counter()
        self.steps = 0

    def tick(self, step: int, epoch: int, loss: float) -> None:
        self.steps += 1
        now = time.perf_counter()
        if self.emit is None or now - self.last < self.every_s:
            return
        self.last = now
        rate = self.steps / (now - self.began)
        eta = (self.total - step) / rate if rate > 0 else float("inf")
        self.emit(f"{self.name} epoch {epoch + 1}: step {step}/{self.total}, loss {loss:.4f}, "
                  f"{rate:.2f} steps/s, ETA {eta:.0f} s at most (early stopping may end sooner)")


def train_loop(model: nn.Module, optimizer: torch.optim.Optimizer,
               batches: Callable[[int], Iterable[Any]],
               loss_fn: Callable[[Any], Tensor | Mapping[str, Tensor]],
               validate: Callable[[], Mapping[str, float]], cfg: LoopConfig, *, seed: int,
               steps_per_epoch: int, name: str = "model", checkpoint_dir: Path | None = None,
               fingerprint: Mapping[str, Any] | None = None,
               on_eval: Callable[[dict[str, float]], None] | None = None,
               on_progress: Callable[[str], None] | None = None,
               device: torch.device | None = None,
               probe: Callable[[Any], Mapping[str, float]] | None = None) -> LoopResult:
    """Train ``model`` with early stopping; the model ends holding the best weights (eval mode).

    ``fingerprint`` identifies the run's configuration in ``last.pt``: a checkpoint written
    under another one is refused rather than silently mixed. ``probe(batch)`` (e.g. the
    gradient norm of each loss term) runs on the first batch after each validation, before
    its step, and its values join the next history row; it must not change the RNG streams.

    ``cfg.parts`` is for a model made of independent parts that train side by side, such
    as LGCD's two transfer directions over frozen encoders: each part keeps the weights of
    the validation where its own monitor key was best, patience counts validations in which
    no part improved, and the model is validated once more as assembled, which gives
    ``best_metric``; ``best_epoch`` is then the last validation any part kept. Every
    trainable parameter must belong to a part, or the parts would not be independent.

    The epoch loop stays in one piece (steps, resume and checkpointing are named helpers):
    mid-epoch validation, the resume offset and the loss sums all share its state.
    """
    device = device or next(model.parameters()).device
    dtype = autocast_dtype(cfg.precision, device)
    params = [p for p in model.parameters() if p.requires_grad]
    _check_parts(model, cfg, name)
    every = cfg.eval_every or steps_per_epoch
    last = checkpoint_dir / "last.pt" if checkpoint_dir is not None else None
    result = LoopResult(state_dict=cpu_state(model), steps_per_epoch=steps_per_epoch,
                        precision="bf16" if dtype is not None else "fp32")
    fingerprint = dict(fingerprint or {})
    epoch, offset, stale, done = 0, 0, 0, False
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        if last is not None and last.exists():
            epoch, offset, stale, done = _resume(last, model, optimizer, result, cfg, fingerprint,
                                                 name, device)
        clock = _Clock(name, cfg.progress_every_s, cfg.epochs * steps_per_epoch, on_progress)
        sums: dict[str, float] = {}
        probed: dict[str, float] = {}
        n_since = 0
        while not done and epoch < cfg.epochs:
            began = time.perf_counter()
            model.train()
            stream: Iterator[Any] = iter(batches(epoch))
            for _ in range(offset):  # resume mid-epoch: the batches are a function of the epoch
                next(stream, None)
            in_epoch = offset
            for batch in stream:
                if probe is not None and n_since == 0:
                    probed = {PROBE + k: float(v) for k, v in probe(batch).items()}
                terms = _step(optimizer, params, loss_fn, batch, cfg, dtype, device, name,
                              result.steps + 1, epoch)
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
                n_since, in_epoch = n_since + 1, in_epoch + 1
                result.steps += 1
                result.steps_this_call += 1
                clock.tick(result.steps, epoch, float(terms["total"].detach()))
                if in_epoch % every == 0 and in_epoch < steps_per_epoch:
                    result.train_seconds += time.perf_counter() - began
                    done, stale = _validate_and_save(model, optimizer, validate, cfg, result,
                                                     {**sums, **probed}, n_since, epoch,
                                                     in_epoch, stale, last, fingerprint, device,
                                                     on_eval, began)
                    sums, probed, n_since, began = {}, {}, 0, time.perf_counter()
                    if done:
                        break
            if done:
                break
            result.train_seconds += time.perf_counter() - began
            epoch, offset = epoch + 1, 0
            done, stale = _validate_and_save(model, optimizer, validate, cfg, result,
                                             {**sums, **probed}, n_since, epoch, 0, stale,
                                             last, fingerprint, device, on_eval, began)
            sums, probed, n_since = {}, {}, 0
    model.load_state_dict(result.state_dict)
    model.eval()
    if cfg.parts and result.history:
        with torch.no_grad():
            result.selected = {k: float(v) for k, v in validate().items()}
        result.best_metric = result.selected[cfg.monitor]
    return result


def _check_parts(model: nn.Module, cfg: LoopConfig, name: str) -> None:
    """With ``cfg.parts``, every trainable parameter must belong to one of them."""
    if cfg.parts:
        loose = [n for n, p in model.named_parameters()
                 if p.requires_grad and not n.startswith(tuple(x for x, _ in cfg.parts))]
        if loose:
            raise ValueError(f"{name}: trainable parameters outside every part, e.g. {loose[0]}; "
                             "parts must hold all of them")


def _resume(last: Path, model: nn.Module, optimizer: torch.optim.Optimizer, result: LoopResult,
            cfg: LoopConfig, fingerprint: dict, name: str,
            device: torch.device) -> tuple[int, int, int, bool]:
    """Restore ``last.pt`` into the model, optimizer, RNG and ``result``.

    Returns (epoch, offset in it, stale validations, done).
    """
    ckpt = load_checkpoint(last)
    if ckpt.get("fingerprint") != fingerprint:
        raise ValueError(f"checkpoint {last} was written with another {name} config; "
                         "delete it to start over")
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    if device.type == "cuda" and "cuda" in ckpt["rng"]:
        torch.cuda.set_rng_state(ckpt["rng"]["cuda"], device)
    epoch, offset, stale, done = ckpt["epoch"], ckpt["offset"], ckpt["stale"], ckpt["done"]
    result.history, result.steps = ckpt["history"], ckpt["steps"]
    result.best_epoch, result.best_metric = ckpt["best_epoch"], ckpt["best_metric"]
    result.state_dict, result.resumed_from = ckpt["best_state"], len(result.history)
    result.selected = ckpt.get("selected") or next(  # last.pt of an older version
        (dict(h) for h in result.history if h["epoch"] == result.best_epoch), {})
    result.part_best = ckpt.get("part_best", {})
    result.part_epochs = ckpt.get("part_epochs", {})
    result.stopped_early = stale >= cfg.patience
    return epoch, offset, stale, done


def _step(optimizer: torch.optim.Optimizer, params: list[nn.Parameter],
          loss_fn: Callable[[Any], Tensor | Mapping[str, Tensor]], batch: Any, cfg: LoopConfig,
          dtype: torch.dtype | None, device: torch.device, name: str, step: int,
          epoch: int) -> dict[str, Tensor]:
    """One optimizer step on ``batch`` (autocast, finite check, clipping); returns the loss terms."""
    with torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext():
        terms = _terms(loss_fn(batch))
    _check_finite(name, terms, step, epoch)
    optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    optimizer.step()
    return terms


def _validate_and_save(model: nn.Module, optimizer: torch.optim.Optimizer,
                       validate: Callable[[], Mapping[str, float]], cfg: LoopConfig,
                       result: LoopResult, sums: dict[str, float], n_steps: int, epoch: int,
                       in_epoch: int, stale: int, last: Path | None, fingerprint: dict,
                       device: torch.device,
                       on_eval: Callable[[dict[str, float]], None] | None,
                       segment_start: float) -> tuple[bool, int]:
    """One validation: history row, best weights, patience, ``last.pt``. Returns (done, stale).

    ``sums`` holds loss sums over the segment's ``n_steps`` (averaged into ``loss_*``) and
    the probe's values (keys ``probe.*``, kept as they are). ``epoch`` counts finished
    epochs; ``in_epoch`` the steps already taken in the next one (0 at an epoch's end), so a
    resume continues exactly after this point.
    """
    began = time.perf_counter()
    model.eval()
    with torch.no_grad():
        metrics = dict(validate())
    model.train()
    result.eval_seconds += time.perf_counter() - began
    if cfg.monitor not in metrics:
        raise KeyError(f"validate() must return {cfg.monitor!r}, got {sorted(metrics)}")
    spe = max(1, result.steps_per_epoch)
    at = epoch if in_epoch == 0 else round(epoch + in_epoch / spe, 4)
    # seconds: training since the previous validation plus this validation
    row = {"epoch": at, "step": result.steps, "seconds": time.perf_counter() - segment_start,
           **{f"loss_{k}": v / max(1, n_steps) for k, v in sums.items()
              if not k.startswith(PROBE)},
           **{k[len(PROBE):]: v for k, v in sums.items() if k.startswith(PROBE)}, **metrics}
    if "loss_total" in row:
        row["loss"] = row["loss_total"]
    result.history.append(row)
    stale = _select(model, cfg, metrics, result, at, stale)
    result.stopped_early = stale >= cfg.patience
    finished = in_epoch == 0 and epoch >= cfg.epochs
    done = result.stopped_early or finished
    if last is not None:
        rng = {"torch": torch.get_rng_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(device)
        save_checkpoint(last, {
            "model": cpu_state(model), "optimizer": optimizer.state_dict(), "epoch": epoch,
            "offset": in_epoch, "stale": stale, "done": done, "steps": result.steps,
            "history": result.history, "best_epoch": result.best_epoch,
            "best_metric": result.best_metric, "best_state": result.state_dict, "rng": rng,
            "selected": result.selected, "part_best": result.part_best,
            "part_epochs": result.part_epochs,
            "fingerprint": fingerprint})
    if on_eval is not None:
        on_eval(row)
    return done, stale


def _select(model: nn.Module, cfg: LoopConfig, metrics: Mapping[str, float], result: LoopResult,
            at: float, stale: int) -> int:
    """Keep the weights of a better validation (per part with ``cfg.parts``); returns ``stale``."""
    if cfg.parts:
        state = None
        for prefix, key in cfg.parts:
            if key not in metrics:
                raise KeyError(f"validate() must return {key!r} for part {prefix!r}, "
                               f"got {sorted(metrics)}")
            if metrics[key] > result.part_best.get(prefix, -math.inf):
                state = state or cpu_state(model)
                result.state_dict.update({k: v for k, v in state.items() if k.startswith(prefix)})
                result.part_best[prefix], result.part_epochs[prefix] = metrics[key], at
        if state is not None:
            result.best_epoch, stale = at, 0
        else:
            stale += 1
    elif metrics[cfg.monitor] > result.best_metric:
        result.best_metric, result.best_epoch, stale = metrics[cfg.monitor], at, 0
        result.state_dict, result.selected = cpu_state(model), dict(metrics)
    else:
        stale += 1
    return stale
