"""Pre-training of one domain's sequence encoder (paper section 3.3.1, eq. 3).

Data: the domain's part of every *training* sequence: single-domain users of the
domain and the within-domain sub-sequences of overlapping training users (their
held-out last item put back when it is of this domain). Valid and test users are
never read. Why the overlap users too: on a pair where almost every user
overlaps, single-domain users alone are too few to train anything, and on
Food-Kitchen they add 7,501 sequences to Food's 5,472.

A seeded slice of those sequences is held out; at each validation their last
item is ranked against every item of the domain from the rest of the sequence
(HR@10, NDCG@10). The shared loop (models/train.py) early-stops on NDCG@10
and restores the best weights.

Loss: eq. 3, softmax cross-entropy of the fused state against E_fusion. Every
prefix of a training sequence counts as one S_i (as in SASRec). Catalogs above
``full_softmax_max_items`` use the logQ-corrected sampled softmax of
models/losses.py over the batch's positives plus ``sampled_negatives`` shared
uniform negatives, and only the candidates' rows of E_fusion are computed.

On CPU the run is deterministic for a given seed (and thread count).
"""

import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import polars as pl
import torch
import torch.nn.functional as F

from models.data.schema import SEQUENCES
from models.device import resolve_device
from models.encoders.sequence import DomainEncoder, EncoderConfig, pad_sequences
from models.losses import check_negatives, sampled_next_item_loss, target_frequencies
from models.metrics import hit_rate, ndcg, target_ranks
from models.train import LoopConfig, train_loop

TOP_K = 10


class TrainingDataError(ValueError):
    """Sequences that cannot train an encoder; the message names the domain and the count."""


@dataclass(frozen=True)
class EncoderTrainConfig:
    """Model shape and optimisation of the per-domain pre-training; validated on creation."""

    # model (paper 4.1.3: d = 64)
    d: int = 64
    n_heads: int = 2
    n_layers: int = 2
    max_len: int = 50  # most recent items of a history that the encoder reads
    dropout: float = 0.2
    # optimisation (paper 4.1.3: Adam, lr 1e-3, single-domain batch 128)
    lr: float = 1e-3
    batch_size: int = 128
    epochs: int = 30  # upper bound; early stopping usually ends sooner
    patience: int = 3  # validations without a better NDCG@10 before stopping
    eval_every: int = 0  # steps between validations; 0 = after every epoch
    precision: str = "auto"  # autocast: auto (bf16 where the CPU has it natively), fp32, bf16
    # loss: full softmax up to this many items, sampled softmax (logQ-corrected) above
    full_softmax_max_items: int = 10000
    sampled_negatives: int = 1024  # shared uniform negatives per step of the sampled softmax
    # data
    valid_fraction: float = 0.1  # share of training sequences held out for early stopping
    max_valid: int = 2000  # cap on held-out sequences, so validation stays cheap on big domains
    min_sequences: int = 10  # fewer usable sequences (>= 2 items) than this is an error
    seed: int = 0
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", "cuda:N"

    def __post_init__(self) -> None:
        ints = {"d": 1, "n_heads": 1, "n_layers": 1, "max_len": 1, "batch_size": 1, "epochs": 1,
                "patience": 1, "max_valid": 1, "min_sequences": 2, "seed": 0, "eval_every": 0,
                "full_softmax_max_items": 1, "sampled_negatives": 1}
        for name, low in ints.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"encoder.{name}={value!r}; must be an integer >= {low}")
        if self.d % self.n_heads:
            raise ValueError(
                f"encoder.d={self.d} is not divisible by encoder.n_heads={self.n_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"encoder.dropout={self.dropout!r}; allowed [0, 1)")
        if not 0.0 < self.lr <= 1.0:
            raise ValueError(f"encoder.lr={self.lr!r}; allowed (0, 1]")
        if not 0.0 < self.valid_fraction < 1.0:
            raise ValueError(f"encoder.valid_fraction={self.valid_fraction!r}; allowed (0, 1)")
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"encoder.device={self.device!r}; use auto, cpu, cuda or cuda:N")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"encoder.precision={self.precision!r}; allowed auto, fp32, bf16")

    def model_config(self, n_items: int, text_dim: int) -> EncoderConfig:
        return EncoderConfig(n_items=n_items, text_dim=text_dim, d=self.d, n_heads=self.n_heads,
                             n_layers=self.n_layers, max_len=self.max_len, dropout=self.dropout)

    def loop(self) -> LoopConfig:
        return LoopConfig(epochs=self.epochs, patience=self.patience, eval_every=self.eval_every,
                          precision=self.precision)

    def uses_sampled_softmax(self, n_items: int) -> bool:
        return n_items > self.full_softmax_max_items


@dataclass(frozen=True)
class EpochStats:
    epoch: float  # 1-based epoch of the validation (fractional when validating within epochs)
    loss: float  # mean training loss since the previous validation
    hr10: float  # validation HR@10
    ndcg10: float  # validation NDCG@10
    seconds: float
    hr10_single: float | None = None  # HR@10 of the held-out single-domain users alone
    ndcg10_single: float | None = None


@dataclass
class TrainResult:
    state_dict: dict[str, torch.Tensor]  # best validation's weights, on CPU
    config: dict  # DomainEncoder.to_checkpoint() config
    history: list[EpochStats] = field(default_factory=list)
    best_epoch: float = 0
    n_train: int = 0  # training sequences
    n_valid: int = 0  # held-out sequences
    n_positions: int = 0  # next-item targets per epoch
    n_single: int = 0  # training sequences from single-domain users
    n_overlap: int = 0  # training sequences from overlapping users' within-domain parts
    loss: str = "full"  # "full" or "sampled" softmax
    precision: str = "fp32"
    steps: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class DomainSequences:
    """A domain's training sequences and where they came from."""

    sequences: list[list[int]]
    n_single: int
    n_overlap: int
    overlap: tuple[bool, ...] = ()  # per sequence: from an overlapping user; () = none are

    def is_overlap(self, i: int) -> bool:
        return bool(self.overlap) and self.overlap[i]


def domain_training_sequences(sequences: pl.DataFrame, domain: str) -> DomainSequences:
    """The domain's part of every training user's history, ordered by user.

    Single-domain users of the domain as they are; overlapping training users by their
    items of this domain, the held-out last item included when it is of this domain.
    Valid and test users are never read.
    """
    missing = [c for c in SEQUENCES if c not in sequences.columns]
    if missing:
        raise TrainingDataError(f"sequences table lacks columns {missing} (see models/data/schema.py)")
    train = sequences.filter(pl.col("split") == "train").sort("user")
    single = train.filter((pl.col("kind") == "single") & (pl.col("source_domain") == domain))
    foreign = single.filter(pl.col("domains").list.eval(pl.element() != domain).list.any()).height
    if foreign:
        raise TrainingDataError(f"domain {domain}: {foreign} single-domain sequences hold items of "
                                "another domain")
    out, flags, n_single, n_overlap = [], [], 0, 0
    for r in train.filter((pl.col("kind") == "single") & (pl.col("source_domain") == domain)
                          | (pl.col("kind") == "overlap")).iter_rows(named=True):
        items = [int(i) for i, d in zip(r["items"], r["domains"], strict=True) if d == domain]
        if r["kind"] == "overlap" and r["target_domain"] == domain and r["target_item"] is not None:
            items.append(int(r["target_item"]))
        if not items:
            continue
        out.append(items)
        flags.append(r["kind"] == "overlap")
        n_single += r["kind"] == "single"
        n_overlap += r["kind"] == "overlap"
    return DomainSequences(out, n_single, n_overlap, tuple(flags))


class SequenceBatches:
    """Right-padded (input, target, mask) batches; input = s[:-1], target = s[1:].

    Each sequence keeps its last ``max_len + 1`` items; a batch is trimmed to its
    longest member so short sequences do not pay for the longest.
    """

    def __init__(self, sequences: list[list[int]], max_len: int):
        kept = [s[-(max_len + 1):] for s in sequences]
        self.lengths = torch.tensor([len(s) - 1 for s in kept])  # (S,)
        self.inputs = torch.zeros(len(kept), max_len, dtype=torch.long)  # (S, max_len)
        self.targets = torch.zeros(len(kept), max_len, dtype=torch.long)  # (S, max_len)
        for row, seq in enumerate(kept):
            n = len(seq) - 1
            self.inputs[row, :n] = torch.tensor(seq[:-1])
            self.targets[row, :n] = torch.tensor(seq[1:])
        self.mask = torch.arange(max_len)[None, :] < self.lengths[:, None]  # (S, max_len)

    def __len__(self) -> int:
        return len(self.lengths)

    def steps(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def epoch(self, epoch: int, batch_size: int, seed: int,
              device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The batches of one epoch: a pure function of (seed, epoch), so a resume matches."""
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(
            seed * 100_003 + epoch))
        for start in range(0, len(self), batch_size):
            idx = order[start:start + batch_size]
            width = int(self.lengths[idx].max())
            yield (self.inputs[idx, :width].to(device), self.targets[idx, :width].to(device),
                   self.mask[idx, :width].to(device))


def next_item_loss(model: DomainEncoder, inputs: torch.Tensor, targets: torch.Tensor,
                   mask: torch.Tensor) -> torch.Tensor:
    """Eq. 3 averaged over every real position: softmax over all N items' E_fusion."""
    h = model(inputs, mask)  # (B, L, d)
    logits = h[mask] @ model.item_table().T  # (P, N), P = real positions only
    return F.cross_entropy(logits.float(), targets[mask])


class SampledNextItemLoss:
    """Eq. 3 with the logQ-corrected sampled softmax: E_fusion rows of the candidates only."""

    def __init__(self, target_freq: torch.Tensor, n_negatives: int, seed: int):
        self.freq, self.n_negatives = target_freq, n_negatives
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, model: DomainEncoder, inputs: torch.Tensor, targets: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
        h = model(inputs, mask)[mask]  # (P, d)
        pos = targets[mask]  # (P,)
        return sampled_next_item_loss(h, pos, model.item_table, self.freq, self.n_negatives,
                                      self.generator)


def train_step(model: DomainEncoder, optimizer: torch.optim.Optimizer,
               batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> float:
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = next_item_loss(model, *batch)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@torch.no_grad()
def validation_ranks(model: DomainEncoder, histories: list[list[int]], targets: list[int],
                     batch_size: int = 256) -> torch.Tensor:
    """0-based rank of each target among all N items, scored from its history: (n,)."""
    model.eval()
    device = model.item_text.device
    table = model.item_table()  # (N, d)
    ranks = []
    for start in range(0, len(histories), batch_size):
        items, mask = pad_sequences(histories[start:start + batch_size], model.cfg.max_len,
                                    device=device)
        scores = model.encode(items, mask) @ table.T  # (B, N)
        target = torch.tensor(targets[start:start + batch_size], device=device)
        ranks.append(target_ranks(scores, target).cpu())
    return torch.cat(ranks) if ranks else torch.zeros(0, dtype=torch.long)


def evaluate(model: DomainEncoder, histories: list[list[int]], targets: list[int],
             k: int = TOP_K, batch_size: int = 256) -> tuple[float, float]:
    """(HR@k, NDCG@k) of predicting each target from its history over all items."""
    ranks = validation_ranks(model, histories, targets, batch_size)
    return hit_rate(ranks, k), ndcg(ranks, k)


def split_users(sequences: list[list[int]], cfg: EncoderTrainConfig,
                domain: str) -> tuple[list[list[int]], list[list[int]]]:
    """(train, held-out) sequences with at least 2 items, held-out chosen by seed."""
    train, valid = split_indices(sequences, cfg, domain)
    return [sequences[i] for i in train], [sequences[i] for i in valid]


def split_indices(sequences: list[list[int]], cfg: EncoderTrainConfig,
                  domain: str) -> tuple[list[int], list[int]]:
    """Indices of the (train, held-out) sequences of ``split_users``, in their order."""
    usable = [i for i, s in enumerate(sequences) if len(s) >= 2]
    if len(usable) < cfg.min_sequences:
        raise TrainingDataError(
            f"domain {domain}: only {len(usable)} training sequences with at least 2 items of "
            f"the domain (of {len(sequences)}); the sequence encoder needs at least "
            f"{cfg.min_sequences} (encoder.min_sequences)")
    n_valid = min(cfg.max_valid, max(1, round(cfg.valid_fraction * len(usable))))
    order = torch.randperm(len(usable), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
    held = set(order[:n_valid])
    return ([i for k, i in enumerate(usable) if k not in held],
            [i for k, i in enumerate(usable) if k in held])


def _check_inputs(sequences: list[list[int]], n_items: int, cfg: EncoderTrainConfig,
                  domain: str) -> bool:
    """Refuse items outside the domain and too few items to sample negatives from.

    Returns whether the loss is the sampled softmax.
    """
    too_big = [i for s in sequences for i in s if not 0 <= i < n_items]
    if too_big:
        raise TrainingDataError(f"domain {domain}: {len(too_big)} history items outside the "
                                f"{n_items} items of the domain (e.g. {too_big[0]})")
    sampled = cfg.uses_sampled_softmax(n_items)
    if sampled:
        try:
            check_negatives(cfg.sampled_negatives, n_items, "encoder.sampled_negatives")
        except ValueError as exc:
            raise TrainingDataError(f"domain {domain}: {exc}") from exc
    return sampled


def _validator(model: DomainEncoder, valid: list[list[int]],
               single: list[int]) -> Callable[[], dict[str, float]]:
    """HR@10 and NDCG@10 of the held-out sequences' last items, and of ``single``'s alone."""
    valid_hist, valid_target = [s[:-1] for s in valid], [s[-1] for s in valid]

    def validate() -> dict[str, float]:
        ranks = validation_ranks(model, valid_hist, valid_target)
        out = {"hr@10": hit_rate(ranks, TOP_K), "ndcg@10": ndcg(ranks, TOP_K)}
        if single and len(single) < len(valid):
            out["hr@10/single"] = hit_rate(ranks[single], TOP_K)
            out["ndcg@10/single"] = ndcg(ranks[single], TOP_K)
        return out

    return validate


def train_domain_encoder(sequences: list[list[int]] | DomainSequences, item_text: torch.Tensor,
                         cfg: EncoderTrainConfig, domain: str,
                         on_epoch: Callable[[EpochStats], None] | None = None,
                         on_progress: Callable[[str], None] | None = None,
                         progress_every_s: float = 30.0) -> TrainResult:
    """Pre-train one domain's encoder on its training sequences; returns the best validation.

    ``item_text`` is the domain's (N, E) item text embedding matrix, row = item index.
    ``on_epoch`` gets every validation's stats; ``on_progress`` gets a line at most every
    ``progress_every_s`` seconds (step, loss, steps/s, ETA).
    """
    origin = sequences if isinstance(sequences, DomainSequences) else \
        DomainSequences(list(sequences), len(sequences), 0)
    seqs = origin.sequences
    n_items = item_text.shape[0]
    sampled = _check_inputs(seqs, n_items, cfg, domain)
    train_idx, valid_idx = split_indices(seqs, cfg, domain)
    train, valid = [seqs[i] for i in train_idx], [seqs[i] for i in valid_idx]
    # the held-out single-domain users alone: the kind of users earlier versions validated on
    # (single-domain users only), so their numbers stay comparable
    single = [k for k, i in enumerate(valid_idx) if not origin.is_overlap(i)]
    device = resolve_device(cfg.device)
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        model = DomainEncoder(cfg.model_config(n_items, item_text.shape[1]), item_text).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    batches = SequenceBatches(train, cfg.max_len)
    loss_of = next_item_loss
    if sampled:
        freq = target_frequencies([i for s in train for i in s[-(cfg.max_len + 1):][1:]], n_items)
        loss_of = SampledNextItemLoss(freq, cfg.sampled_negatives, cfg.seed)
    result = TrainResult(state_dict={}, config=model.to_checkpoint()[1], n_train=len(train),
                         n_valid=len(valid), n_positions=int(batches.lengths.sum()),
                         n_single=origin.n_single, n_overlap=origin.n_overlap,
                         loss="sampled" if sampled else "full")

    def report(row: dict[str, float]) -> None:
        stats = EpochStats(row["epoch"], row.get("loss", float("nan")), row["hr@10"],
                           row["ndcg@10"], row["seconds"], row.get("hr@10/single"),
                           row.get("ndcg@10/single"))
        result.history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)

    loop = train_loop(
        model, optimizer, lambda e: batches.epoch(e, cfg.batch_size, cfg.seed, device),
        lambda b: loss_of(model, *b), _validator(model, valid, single),
        dataclasses.replace(cfg.loop(), progress_every_s=progress_every_s),
        seed=cfg.seed, steps_per_epoch=batches.steps(cfg.batch_size),
        name=f"sequence encoder {domain}", on_eval=report, on_progress=on_progress,
        device=device)
    result.state_dict = loop.state_dict
    result.best_epoch, result.steps = loop.best_epoch, loop.steps
    result.precision = loop.precision
    result.seconds = time.perf_counter() - started
    return result
