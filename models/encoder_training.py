"""Pre-training of one domain's sequence encoder (paper section 3.3.1, eq. 3).

Data: only the domain's single-domain users, i.e. rows of ``sequences`` with
``kind == "single"``, ``split == "train"`` and ``source_domain == domain``. A
seeded slice of those users is held out; each epoch their last item is ranked
against every item of the domain from the rest of their history (HR@10,
NDCG@10), and training stops once NDCG@10 has not improved for ``patience``
epochs. The best epoch's weights are returned.

Loss: eq. 3, softmax cross-entropy of the fused state against E_fusion of all N
items. Every prefix of a training sequence counts as one S_i (as in SASRec):
one causal forward pass gives the state after each prefix.

On CPU the run is deterministic for a given seed (and thread count).
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import polars as pl
import torch
import torch.nn.functional as F

from models.device import resolve_device
from models.metrics import hit_rate, ndcg, target_ranks
from models.schema import SEQUENCES
from models.sequence_encoder import DomainEncoder, EncoderConfig, pad_sequences

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
    patience: int = 3  # epochs without a better validation NDCG@10 before stopping
    # data
    valid_fraction: float = 0.1  # share of single-domain users held out for early stopping
    max_valid: int = 2000  # cap on held-out users, so validation stays cheap on big domains
    min_sequences: int = 10  # fewer usable sequences (>= 2 items) than this is an error
    seed: int = 0
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", "cuda:N"

    def __post_init__(self) -> None:
        ints = {"d": 1, "n_heads": 1, "n_layers": 1, "max_len": 1, "batch_size": 1, "epochs": 1,
                "patience": 1, "max_valid": 1, "min_sequences": 2, "seed": 0}
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

    def model_config(self, n_items: int, text_dim: int) -> EncoderConfig:
        return EncoderConfig(n_items=n_items, text_dim=text_dim, d=self.d, n_heads=self.n_heads,
                             n_layers=self.n_layers, max_len=self.max_len, dropout=self.dropout)


@dataclass(frozen=True)
class EpochStats:
    epoch: int  # 1-based
    loss: float  # mean training loss over the epoch's batches
    hr10: float  # validation HR@10
    ndcg10: float  # validation NDCG@10
    seconds: float


@dataclass
class TrainResult:
    state_dict: dict[str, torch.Tensor]  # best epoch's weights, on CPU
    config: dict  # DomainEncoder.to_checkpoint() config
    history: list[EpochStats] = field(default_factory=list)
    best_epoch: int = 0
    n_train: int = 0  # training sequences
    n_valid: int = 0  # held-out sequences
    n_positions: int = 0  # next-item targets per epoch
    steps: int = 0
    seconds: float = 0.0


def single_domain_sequences(sequences: pl.DataFrame, domain: str) -> list[list[int]]:
    """Item histories of the domain's single-domain training users, ordered by user."""
    missing = [c for c in SEQUENCES if c not in sequences.columns]
    if missing:
        raise TrainingDataError(f"sequences table lacks columns {missing} (see models/schema.py)")
    rows = sequences.filter((pl.col("kind") == "single") & (pl.col("split") == "train")
                            & (pl.col("source_domain") == domain)).sort("user")
    foreign = rows.filter(pl.col("domains").list.eval(pl.element() != domain).list.any()).height
    if foreign:
        raise TrainingDataError(f"domain {domain}: {foreign} single-domain sequences hold items of "
                                "another domain")
    return [list(s) for s in rows["items"].to_list()]


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

    def epoch(self, batch_size: int, generator: torch.Generator,
              device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self), generator=generator)
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
    return F.cross_entropy(logits, targets[mask])


def train_step(model: DomainEncoder, optimizer: torch.optim.Optimizer,
               batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> float:
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = next_item_loss(model, *batch)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@torch.no_grad()
def evaluate(model: DomainEncoder, histories: list[list[int]], targets: list[int],
             k: int = TOP_K, batch_size: int = 256) -> tuple[float, float]:
    """(HR@k, NDCG@k) of predicting each target from its history over all items."""
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
    all_ranks = torch.cat(ranks) if ranks else torch.zeros(0, dtype=torch.long)
    return hit_rate(all_ranks, k), ndcg(all_ranks, k)


def split_users(sequences: list[list[int]], cfg: EncoderTrainConfig,
                domain: str) -> tuple[list[list[int]], list[list[int]]]:
    """(train, held-out) sequences with at least 2 items, held-out chosen by seed."""
    usable = [s for s in sequences if len(s) >= 2]
    if len(usable) < cfg.min_sequences:
        raise TrainingDataError(
            f"domain {domain}: only {len(usable)} single-domain training sequences with at least "
            f"2 items (of {len(sequences)}); the sequence encoder needs at least "
            f"{cfg.min_sequences} (encoder.min_sequences)")
    n_valid = min(cfg.max_valid, max(1, round(cfg.valid_fraction * len(usable))))
    order = torch.randperm(len(usable), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
    held = set(order[:n_valid])
    return ([s for i, s in enumerate(usable) if i not in held],
            [s for i, s in enumerate(usable) if i in held])


def train_domain_encoder(sequences: list[list[int]], item_text: torch.Tensor,
                         cfg: EncoderTrainConfig, domain: str,
                         on_epoch: Callable[[EpochStats], None] | None = None,
                         on_progress: Callable[[str], None] | None = None,
                         progress_every_s: float = 30.0) -> TrainResult:
    """Pre-train one domain's encoder on its single-domain histories; returns the best epoch.

    ``item_text`` is the domain's (N, E) item text embedding matrix, row = item index.
    ``on_epoch`` gets every epoch's stats; ``on_progress`` gets a line at most every
    ``progress_every_s`` seconds inside long epochs (steps/s and the epoch's ETA).
    """
    n_items = item_text.shape[0]
    too_big = [i for s in sequences for i in s if not 0 <= i < n_items]
    if too_big:
        raise TrainingDataError(f"domain {domain}: {len(too_big)} history items outside the "
                                f"{n_items} items of the domain (e.g. {too_big[0]})")
    train, valid = split_users(sequences, cfg, domain)
    device = resolve_device(cfg.device)
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        model = DomainEncoder(cfg.model_config(n_items, item_text.shape[1]), item_text).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        batches = SequenceBatches(train, cfg.max_len)
        generator = torch.Generator().manual_seed(cfg.seed)
        valid_hist, valid_target = [s[:-1] for s in valid], [s[-1] for s in valid]
        result = TrainResult(state_dict={}, config=model.to_checkpoint()[1], n_train=len(train),
                             n_valid=len(valid), n_positions=int(batches.lengths.sum()))
        best, best_state, stale = -1.0, None, 0
        for epoch in range(1, cfg.epochs + 1):
            epoch_start, losses = time.perf_counter(), []
            n_steps, last_report = -(-len(batches) // cfg.batch_size), time.perf_counter()
            for batch in batches.epoch(cfg.batch_size, generator, device):
                losses.append(train_step(model, optimizer, batch))
                now = time.perf_counter()
                if on_progress is not None and now - last_report >= progress_every_s:
                    last_report, rate = now, len(losses) / (now - epoch_start)
                    on_progress(f"domain {domain} epoch {epoch}: step {len(losses)}/{n_steps}, "
                                f"loss {losses[-1]:.4f}, {rate:.2f} steps/s, "
                                f"epoch ETA {(n_steps - len(losses)) / rate:.0f} s")
            result.steps += len(losses)
            hr, nd = evaluate(model, valid_hist, valid_target)
            stats = EpochStats(epoch, sum(losses) / len(losses), hr, nd,
                               time.perf_counter() - epoch_start)
            result.history.append(stats)
            if on_epoch is not None:
                on_epoch(stats)
            if nd > best:
                best, stale, result.best_epoch = nd, 0, epoch
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
                if stale >= cfg.patience:
                    break
    result.state_dict = best_state
    result.seconds = time.perf_counter() - started
    return result
