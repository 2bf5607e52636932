"""Batches for LGCD: rows, collation to tensors, and the cyclic overlap iterator (secs 3.5, 4.1.3).

Everything numpy -> tensor happens here, outside ``LGCD.forward``. Rows come
from the ``sequences`` table (models/data/schema.py) plus an optional per-position
``is_pseudo`` list for pseudo-overlapping users; they are plain dataclasses so
this module needs neither polars nor Dagster (``rows_from_records`` takes
``df.iter_rows(named=True)``).

A step of training holds one batch of up to 128 pseudo users and one batch of 64
real overlapping users, each drawn from an endless cyclic iterator, so that every
step contains real overlap. Both orders are pure functions of (seed, epoch, step),
which makes a resumed run draw exactly the batches the crashed run would have.
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import Tensor

from models.lgcd.config import LGCDConfig

DIRECTIONS = ("AB", "BA")  # source domain then target domain


@dataclass(frozen=True)
class SequenceRow:
    """One user sequence, chronological; item indices are per domain (models/data/schema.py)."""

    user: str
    items: tuple[int, ...]
    domains: tuple[str, ...]
    is_pseudo: tuple[bool, ...]
    source_domain: str
    target_domain: str
    target_item: int
    kind: str  # "overlap" (real, training) | "pseudo" (training) | "eval" (valid/test)

    @property
    def direction(self) -> str:
        return self.source_domain + self.target_domain


def row_from_record(rec: Mapping) -> SequenceRow:
    """Validate a ``sequences`` record (optionally with ``is_pseudo``) into a row.

    A pseudo row without ``target_item`` holds out its last pseudo item as the
    L_rec target, so that, as for real overlap users, h_tgt never contains the label.
    """
    user = str(rec.get("user"))
    items, domains = [int(i) for i in rec["items"]], [str(d) for d in rec["domains"]]
    pseudo = [bool(p) for p in (rec.get("is_pseudo") or [False] * len(items))]
    if not len(items) == len(domains) == len(pseudo):
        raise ValueError(f"user {user}: items, domains and is_pseudo differ in length")
    if set(domains) - {"A", "B"}:
        raise ValueError(f"user {user}: domains must be 'A'/'B', got {sorted(set(domains))}")
    src = rec.get("source_domain")
    tgt = rec.get("target_domain") or ({"A": "B", "B": "A"}.get(src) if src else None)
    if src not in ("A", "B") or tgt not in ("A", "B") or src == tgt:
        raise ValueError(f"user {user}: need distinct source/target domains, got {src!r}/{tgt!r}")
    if any(p and d != tgt for p, d in zip(pseudo, domains, strict=True)):
        raise ValueError(f"user {user}: pseudo items must be in the target domain {tgt}")
    target = rec.get("target_item")
    if any(pseudo):
        kind = "pseudo"
        if target is None:
            last = max(i for i, p in enumerate(pseudo) if p)
            target = items.pop(last)
            del domains[last], pseudo[last]
    elif rec.get("kind") == "overlap" and rec.get("split", "train") == "train":
        kind = "overlap"
    else:
        kind = "eval" if rec.get("split", "train") != "train" else "single"
    if target is None:
        raise ValueError(f"user {user} ({kind}, split {rec.get('split')}): no target item in "
                         f"domain {tgt}; single-domain training rows need pseudo items")
    if not any(d == src and not p for d, p in zip(domains, pseudo, strict=True)):
        raise ValueError(f"user {user}: no real source-domain ({src}) item to condition on")
    return SequenceRow(user, tuple(items), tuple(domains), tuple(pseudo), src, tgt, int(target),
                       kind)


def every_target_rows(row: SequenceRow) -> list[SequenceRow]:
    """A real overlapping user's rows at each of its cross-domain targets, last one included.

    A test user is one source-domain history followed by one target item. A real
    overlapping user holds many such moments: every item preceded by at least one item of
    the other domain, whose history is everything before it (``overlap_targets="every"``).
    On Food-Kitchen the 7,501 users hold 79k of them in both directions where the last
    item alone gives 2,680 Food and 4,821 Kitchen targets; the sequential baselines train
    on the same moments (models/evaluation/baselines/sequential.py ``aligned_examples``).
    """
    if row.kind != "overlap":
        raise ValueError(f"user {row.user}: only real overlap rows expand, not {row.kind!r}")
    items, domains = (*row.items, row.target_item), (*row.domains, row.target_domain)
    rows = []
    for p in range(1, len(items)):
        target = domains[p]
        if all(d == target for d in domains[:p]):
            continue
        source = "B" if target == "A" else "A"
        rows.append(SequenceRow(row.user, items[:p], domains[:p], (False,) * p, source, target,
                                items[p], "overlap"))
    return rows


def rows_from_records(records: Iterable[Mapping],
                      skipped: list[tuple[str, str]] | None = None) -> list[SequenceRow]:
    """Rows of many records; unusable ones raise, or go to ``skipped`` as (user, reason)."""
    rows = []
    for rec in records:
        try:
            rows.append(row_from_record(rec))
        except ValueError as exc:
            if skipped is None:
                raise
            skipped.append((str(rec.get("user")), str(exc)))
    return rows


@dataclass
class PathBatch:
    """Tensors of the rows of one transfer direction; the batch contract of ``LGCD``.

    src_items, src_mask      (B, Ls) real source-domain items -> h_ID, h_text (eq 8)
    tgt_items, tgt_mask      (B, Lt) target-domain history, real and pseudo -> h_tgt (eq 7)
    tgt_id_items, tgt_id_mask (B, Lt) the same with pseudo positions replaced by index 0 and
                             masked: the ID modality of pseudo items never reaches an encoder
    has_tgt, has_tgt_ids     (B,) row has any target history / any *real* target item
    target                   (B,) target-domain item for L_rec (eq 25)
    is_overlap, is_pseudo    (B,) real overlapping user (eq 26) / pseudo user (eq 27)
    weight                   (B,) loss weight of the row (1 / size of its stream's batch)
    row                      (B,) position of the row in the list given to ``collate``
    Rows without a target history get one dummy real position so no encoder sees an
    all-padding sequence; ``has_tgt`` then removes them from every target loss.
    """

    src_items: Tensor
    src_mask: Tensor
    tgt_items: Tensor
    tgt_mask: Tensor
    tgt_id_items: Tensor
    tgt_id_mask: Tensor
    has_tgt: Tensor
    has_tgt_ids: Tensor
    target: Tensor
    is_overlap: Tensor
    is_pseudo: Tensor
    weight: Tensor
    row: Tensor
    any_tgt_ids: bool  # python flag: skip the target ID encoder when no row has real target items

    def __len__(self) -> int:
        return int(self.target.shape[0])

    def to(self, device: torch.device | str) -> "PathBatch":
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in moved.items():
            if isinstance(value, Tensor):
                moved[name] = value.to(device, non_blocking=True)
        return PathBatch(**moved)


@dataclass
class LGCDBatch:
    """A step's rows split by direction ("AB", "BA"); directions without rows are absent."""

    paths: dict[str, PathBatch]

    def to(self, device: torch.device | str) -> "LGCDBatch":
        return LGCDBatch({k: v.to(device) for k, v in self.paths.items()})

    @property
    def n_overlap(self) -> int:
        return sum(int(p.is_overlap.sum()) for p in self.paths.values())


def _pad(seqs: list[list[int]], fill_dummy: bool) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad to (B, L) with index 0; an empty row gets one dummy real position if asked."""
    width = max(1, max((len(s) for s in seqs), default=1))
    items = np.zeros((len(seqs), width), dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=bool)
    for i, s in enumerate(seqs):
        items[i, : len(s)] = s
        mask[i, : len(s)] = True
        if not s and fill_dummy:
            mask[i, 0] = True
    return items, mask


def collate_path(rows: Sequence[SequenceRow], positions: Sequence[int], weights: Sequence[float],
                 max_len: int) -> PathBatch:
    """Rows of one direction -> ``PathBatch`` (keeps each part's most recent ``max_len`` items)."""
    src_seqs, tgt_seqs, tgt_real = [], [], []
    for r in rows:
        parts = list(zip(r.items, r.domains, r.is_pseudo, strict=True))
        src_seqs.append([i for i, d, p in parts if d == r.source_domain and not p][-max_len:])
        tgt = [(i, p) for i, d, p in parts if d == r.target_domain][-max_len:]
        tgt_seqs.append([i for i, _ in tgt])
        tgt_real.append([not p for _, p in tgt])
    src_items, src_mask = _pad(src_seqs, fill_dummy=True)
    tgt_items, tgt_mask = _pad(tgt_seqs, fill_dummy=True)
    real = np.zeros_like(tgt_mask)
    for i, flags in enumerate(tgt_real):
        real[i, : len(flags)] = flags
    has_tgt_ids = real.any(1)
    tgt_id_mask = real.copy()
    tgt_id_mask[~has_tgt_ids, 0] = True  # dummy position; its item is the padding index 0
    t = torch.from_numpy
    return PathBatch(
        src_items=t(src_items), src_mask=t(src_mask),
        tgt_items=t(tgt_items), tgt_mask=t(tgt_mask),
        tgt_id_items=t(np.where(real, tgt_items, 0)), tgt_id_mask=t(tgt_id_mask),
        has_tgt=torch.tensor([len(s) > 0 for s in tgt_seqs]), has_tgt_ids=t(has_tgt_ids),
        target=torch.tensor([r.target_item for r in rows], dtype=torch.long),
        is_overlap=torch.tensor([r.kind == "overlap" for r in rows]),
        is_pseudo=torch.tensor([r.kind == "pseudo" for r in rows]),
        weight=torch.tensor(list(weights), dtype=torch.float32),
        row=torch.tensor(list(positions), dtype=torch.long),
        any_tgt_ids=bool(has_tgt_ids.any()),
    )


def collate(rows: Sequence[SequenceRow], weights: Sequence[float] | None = None,
            max_len: int = 50) -> LGCDBatch:
    """Rows (any mix of directions) -> ``LGCDBatch``; weights default to 1 / len(rows)."""
    if weights is None:
        weights = [1.0 / max(1, len(rows))] * len(rows)
    paths = {}
    for direction in DIRECTIONS:
        pos = [i for i, r in enumerate(rows) if r.direction == direction]
        if pos:
            paths[direction] = collate_path([rows[i] for i in pos], pos, [weights[i] for i in pos],
                                            max_len)
    return LGCDBatch(paths)


class CyclicSampler:
    """Endless batches over n rows: the concatenation of per-cycle permutations.

    ``batch(step)`` is a pure function of (seed, stream, step), so resuming needs only the
    step; ``stream`` keeps two samplers of one seed (overlap, pseudo) independent.
    """

    def __init__(self, n: int, batch_size: int, seed: int, stream: int = 7):
        if n < 1:
            raise ValueError("cyclic overlap batches need at least one real overlapping user")
        self.n, self.batch_size, self.seed, self.stream = n, batch_size, seed, stream
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, cycle: int) -> np.ndarray:
        if cycle not in self._perms:
            if len(self._perms) > 8:
                self._perms.clear()
            rng = np.random.default_rng([self.seed, self.stream, cycle])
            self._perms[cycle] = rng.permutation(self.n)
        return self._perms[cycle]

    def batch(self, step: int) -> np.ndarray:
        flat = np.arange(step * self.batch_size, (step + 1) * self.batch_size)
        return np.array([self._perm(int(i) // self.n)[int(i) % self.n] for i in flat])


class TrainBatches:
    """Per-epoch training batches (section 3.5, "cyclic overlapping sampling").

    overlap_cyclic: each step = pseudo users + overlap_batch_size real overlap users, both
    streams cyclic. ``epoch_unit="overlap"`` makes an epoch one pass over the real overlap
    users (the examples the model is tested like) and, alongside, over the pseudo users,
    at most batch_size of them per step (128 LLM users beside 7,501 real ones: 2 a step;
    41k retrieval users: 128 a step, so an epoch sees a third of them). "pseudo" is the
    paper's reading: batch_size pseudo users a step, one pass over them per epoch, which
    with 128 LLM users was one step.
    The pseudo stream carries ``pseudo_weight`` of the loss and the overlap stream the rest;
    by default that share is the pseudo rows' share of all rows, so 128 pseudo users beside
    7,501 real ones weigh 1.7%, not half (0.5 is the paper's equal-stream reading).
    Otherwise ("w/o Overlap Cyclic"), and also when there is no real overlapping user at
    all: all rows shuffled together in batches of batch_size, weighted the same way.
    The overlap stream is one cyclic stream per target domain, each drawing its share of
    the users' last items per step. ``overlap_targets[dom]="every"`` fills that domain's
    pool with every cross-domain target of each user (``every_target_rows``); an epoch
    still draws as many overlap rows as there are users, so its cost, the pseudo share and
    the other direction's rows stay, and the stream moves on through the pool from one
    epoch to the next.
    """

    def __init__(self, rows: Sequence[SequenceRow], cfg: LGCDConfig):
        bad = [r.user for r in rows if r.kind not in ("overlap", "pseudo")]
        if bad:
            raise ValueError(f"training rows must be 'overlap' or 'pseudo'; e.g. user {bad[0]}")
        if not rows:
            raise ValueError("no training rows")
        self.cfg = cfg
        self.pseudo = [r for r in rows if r.kind == "pseudo"]
        users = [r for r in rows if r.kind == "overlap"]
        self.n_users = len(users)  # an epoch's overlap rows, whatever the pools hold
        # one pool of overlap rows per target domain: the users' last items, or every moment
        self.pools: dict[str, list[SequenceRow]] = {}
        for dom in ("A", "B"):
            if cfg.overlap_targets[dom] == "every":
                pool = [x for r in users for x in every_target_rows(r) if x.target_domain == dom]
            else:
                pool = [r for r in users if r.target_domain == dom]
            if pool:
                self.pools[dom] = pool
        self.overlap = [r for pool in self.pools.values() for r in pool]
        share = len(self.pseudo) / (len(self.pseudo) + self.n_users)
        self.pseudo_weight = share if cfg.pseudo_weight is None else cfg.pseudo_weight
        if not self.overlap or not self.pseudo:  # a single stream carries the whole loss
            self.pseudo_weight = 1.0 if self.pseudo else 0.0
        self.cyclic: dict[str, CyclicSampler] | None = None
        self.pseudo_cyclic = None
        if cfg.overlap_cyclic and self.overlap:
            self.cyclic = {dom: CyclicSampler(len(self.pools[dom]), k, cfg.seed,
                                              stream={"A": 7, "B": 9}[dom])  # pseudo: 8
                           for dom, k in self._stream_sizes(users).items()}
            if self.pseudo and cfg.epoch_unit == "overlap":  # one pass over both, if it fits
                per_step = -(-len(self.pseudo) // self.steps_per_epoch)
                self.pseudo_cyclic = CyclicSampler(
                    len(self.pseudo), min(cfg.batch_size, per_step), cfg.seed, stream=8)

    def _stream_sizes(self, users: Sequence[SequenceRow]) -> dict[str, int]:
        """Overlap rows per step for each target domain: its share of the users' last items.

        A pool of every moment is many times the users (35k Food targets beside 2,680 last
        ones on Food-Kitchen), so drawing from one mixed pool would starve the other
        direction; per-domain streams keep each direction's share whatever its pool holds.
        """
        counts = {dom: sum(r.target_domain == dom for r in users) for dom in self.pools}
        n, total = self.cfg.overlap_batch_size, sum(counts.values())
        sizes = {dom: max(1, round(n * c / total)) for dom, c in counts.items()}
        if len(sizes) == 2:  # the two shares add up to the batch
            first = next(iter(sizes))
            sizes[first] = max(1, n - sizes[next(d for d in sizes if d != first)])
        return sizes

    @property
    def steps_per_epoch(self) -> int:
        if self.cyclic is None:
            return -(-(len(self.pseudo) + self.n_users) // self.cfg.batch_size)
        if not self.pseudo or self.cfg.epoch_unit == "overlap":
            return -(-self.n_users // self.cfg.overlap_batch_size)
        return -(-len(self.pseudo) // self.cfg.batch_size)

    def _weights(self, pseudo: Sequence[SequenceRow], overlap: Sequence[SequenceRow]
                 ) -> list[float]:
        """Row weights: each stream's share spread evenly over its rows in the batch."""
        wp = self.pseudo_weight if overlap else 1.0
        wo = 1.0 - self.pseudo_weight if pseudo else 1.0
        return ([wp / len(pseudo)] * len(pseudo) if pseudo else []) + \
            ([wo / len(overlap)] * len(overlap) if overlap else [])

    def epoch(self, epoch: int) -> Iterator[LGCDBatch]:
        """Yield the batches of ``epoch`` (0-based), identical for equal (seed, epoch)."""
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, 3, epoch])
        steps = self.steps_per_epoch
        if self.cyclic is None:
            pool = self.pseudo + self.overlap
            order = rng.permutation(len(pool))
            for s in range(steps):
                chunk = [pool[i] for i in order[s * cfg.batch_size:(s + 1) * cfg.batch_size]]
                pseudo = [r for r in chunk if r.kind == "pseudo"]
                overlap = [r for r in chunk if r.kind == "overlap"]
                yield collate(pseudo + overlap, self._weights(pseudo, overlap), cfg.max_len)
            return
        order = rng.permutation(len(self.pseudo))
        for s in range(steps):
            step = epoch * steps + s
            if self.pseudo_cyclic is not None:
                pseudo = [self.pseudo[i] for i in self.pseudo_cyclic.batch(step)]
            else:
                pseudo = [self.pseudo[i]
                          for i in order[s * cfg.batch_size:(s + 1) * cfg.batch_size]]
            overlap = [self.pools[dom][i] for dom, sampler in self.cyclic.items()
                       for i in sampler.batch(step)]
            yield collate(pseudo + overlap, self._weights(pseudo, overlap), cfg.max_len)
