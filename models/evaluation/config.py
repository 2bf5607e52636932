"""Typed configuration of evaluation, baselines, the hyper-parameter sweep and the report.

Read from the ``evaluation:`` section of a dataset YAML (pipeline/config.py) by
``EvaluationConfig.from_mapping``; every field has a default, so a YAML without the
section evaluates over three seeds under two candidate protocols, the paper's
(1 + 999 candidates from all domains, the primary one) and LLMCDSR's (1 + 999 from
the target domain), every trained model ranked under both. The Figure 3 sweep is off
unless the section names ``sweep`` (``sweep: {}`` trains the paper's grid; each point
is one more LGCD training).
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from models.config import NestedFieldError, from_mapping
from models.evaluation.candidates import POOLS
from models.train import LoopConfig

BASELINES = ("popularity", "target_popularity", "item_knn", "bag", "sasrec", "gru4rec", "emcdr")


@dataclass(frozen=True)
class SequentialConfig:
    """SASRec / GRU4Rec over one joint item vocabulary of both domains."""

    d: int = 64  # hidden size (as LGCD)
    n_layers: int = 2  # SASRec blocks / GRU layers
    n_heads: int = 2  # SASRec attention heads
    max_len: int = 50  # most recent items read
    dropout: float = 0.2
    lr: float = 1e-3
    batch_size: int = 128
    epochs: int = 10  # upper bound; early stopping on validation NDCG@10
    patience: int = 2  # validations without a better NDCG@10
    eval_every: int = 0  # steps between validations; 0 = after every epoch
    precision: str = "auto"  # autocast: auto (bf16 where the CPU has it natively), fp32, bf16
    # cross-domain alignment: also learn source-only prefixes of overlapping training users ->
    # their next target-domain item, scored over the target domain (the test task)
    aligned: bool = True
    # loss: full softmax up to this many items, logQ-corrected sampled softmax above
    full_softmax_max_items: int = 10000
    sampled_negatives: int = 1024  # shared uniform negatives per step of the sampled softmax

    def __post_init__(self) -> None:
        for name in ("d", "n_layers", "n_heads", "max_len", "batch_size", "epochs", "patience",
                     "sampled_negatives", "full_softmax_max_items"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"evaluation.sequential.{name}={getattr(self, name)!r}; "
                                 "must be an integer >= 1")
        if not isinstance(self.eval_every, int) or self.eval_every < 0:
            raise ValueError(f"evaluation.sequential.eval_every={self.eval_every!r}; "
                             "must be an integer >= 0")
        if self.d % self.n_heads:
            raise ValueError(f"evaluation.sequential.d={self.d} is not divisible by "
                             f"n_heads={self.n_heads}")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 < self.lr <= 1.0:
            raise ValueError(f"evaluation.sequential: dropout={self.dropout} must be in [0, 1) "
                             f"and lr={self.lr} in (0, 1]")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"evaluation.sequential.precision={self.precision!r}; "
                             "allowed auto, fp32, bf16")

    def loop(self) -> LoopConfig:
        return LoopConfig(epochs=self.epochs, patience=self.patience, eval_every=self.eval_every,
                          precision=self.precision)


@dataclass(frozen=True)
class BagConfig:
    """The bag-of-source-items floor: mean source embedding, a linear map, target items + bias."""

    d: int = 64  # embedding size
    dropout: float = 0.2  # on the bag's mean embedding
    lr: float = 1e-3
    batch_size: int = 256  # (user, target item) pairs per step
    epochs: int = 60  # upper bound; early stopping on validation NDCG@10
    patience: int = 5  # validations without a better NDCG@10
    full_softmax_max_items: int = 10000  # logQ-corrected sampled softmax above this many items
    sampled_negatives: int = 2048  # shared uniform negatives per step of the sampled softmax

    def __post_init__(self) -> None:
        for name in ("d", "batch_size", "epochs", "patience", "full_softmax_max_items",
                     "sampled_negatives"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"evaluation.bag.{name}={getattr(self, name)!r}; "
                                 "must be an integer >= 1")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 < self.lr <= 1.0:
            raise ValueError(f"evaluation.bag: dropout={self.dropout} must be in [0, 1) "
                             f"and lr={self.lr} in (0, 1]")

    def loop(self) -> LoopConfig:
        return LoopConfig(epochs=self.epochs, patience=self.patience, precision="fp32")


@dataclass(frozen=True)
class EMCDRConfig:
    """EMCDR-style mapping MLP from source to target user representations."""

    hidden: int = 128  # width of the tanh hidden layer
    lr: float = 1e-3
    batch_size: int = 64
    epochs: int = 100  # upper bound; early stopping on validation NDCG@10
    patience: int = 10

    def __post_init__(self) -> None:
        for name in ("hidden", "batch_size", "epochs", "patience"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"evaluation.emcdr.{name}={getattr(self, name)!r}; "
                                 "must be an integer >= 1")
        if not 0.0 < self.lr <= 1.0:
            raise ValueError(f"evaluation.emcdr.lr={self.lr}; allowed (0, 1]")

    def loop(self) -> LoopConfig:
        return LoopConfig(epochs=self.epochs, patience=self.patience, precision="fp32")


@dataclass(frozen=True)
class SweepConfig:
    """Figure 3: one LGCD training per value, the other two at their defaults."""

    n_k: tuple[int, ...] = (5, 10, 20)
    T: tuple[int, ...] = (50, 100, 200)
    lam: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)  # same lambda for both target domains
    epochs: int | None = None  # LGCD epochs per sweep point; None keeps the model's setting

    def __post_init__(self) -> None:
        if any(not isinstance(v, int) or not 1 <= v <= 200 for v in self.n_k):
            raise ValueError(f"evaluation.sweep.n_k={list(self.n_k)}; integers in [1, 200]")
        if any(not isinstance(v, int) or v < 1 for v in self.T):
            raise ValueError(f"evaluation.sweep.T={list(self.T)}; integers >= 1")
        if any(not 0.0 < v <= 1.0 for v in self.lam):
            raise ValueError(f"evaluation.sweep.lam={list(self.lam)}; values in (0, 1]")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"evaluation.sweep.epochs={self.epochs}; >= 1 or null")

    def points(self) -> list[tuple[str, float]]:
        """(parameter, value) of every sweep training, in plotting order."""
        return ([("n_k", v) for v in self.n_k] + [("T", v) for v in self.T]
                + [("lam", v) for v in self.lam])


@dataclass(frozen=True)
class EvaluationConfig:
    seeds: tuple[int, ...] = (0, 1, 2)  # candidate lists and model training, one run per seed
    # seeds of the LGCD variants other than full (Table 3); None = all of ``seeds``
    variant_seeds: tuple[int, ...] | None = None
    n_negatives: int = 999  # sampled negatives per held-out user (paper 4.1.1)
    # candidate pools, each its own protocol (models/evaluation/candidates.py POOLS): "all" domains
    # (paper) | "target" domain (LLMCDSR code) | "full"; the first is the primary one
    # (baselines' early stopping, significance, the headline Table 1)
    protocols: tuple[str, ...] = ("all", "target")
    baselines: tuple[str, ...] = BASELINES
    batch_size: int = 256  # users per scoring batch
    permutations: int = 10000  # paired permutation test draws
    threads: int = 0  # torch threads while training baselines; 0 = the step's share of the cores
    sequential: SequentialConfig = field(default_factory=SequentialConfig)
    emcdr: EMCDRConfig = field(default_factory=EMCDRConfig)
    bag: BagConfig = field(default_factory=BagConfig)
    sweep: SweepConfig | None = None  # Figure 3; YAML ``sweep: {}`` enables the paper's grid

    def __post_init__(self) -> None:
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"evaluation.seeds={list(self.seeds)}; need distinct seeds")
        if self.variant_seeds is not None and (not self.variant_seeds
                                               or set(self.variant_seeds) - set(self.seeds)):
            raise ValueError(f"evaluation.variant_seeds={list(self.variant_seeds)}; need a non-empty "
                             f"subset of evaluation.seeds={list(self.seeds)} (candidates exist "
                             "only for those)")
        if (not isinstance(self.protocols, tuple) or not self.protocols
                or len(set(self.protocols)) != len(self.protocols)
                or set(self.protocols) - set(POOLS)):
            shown = list(self.protocols) if isinstance(self.protocols, tuple) else self.protocols
            raise ValueError(f"evaluation.protocols={shown!r}; need distinct "
                             f"protocols from {list(POOLS)}, the primary one first")
        unknown = set(self.baselines) - set(BASELINES)
        if unknown:
            raise ValueError(f"evaluation.baselines: unknown {sorted(unknown)}; "
                             f"allowed {list(BASELINES)}")
        for name, low in (("n_negatives", 1), ("batch_size", 1), ("permutations", 1),
                          ("threads", 0)):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < low:
                raise ValueError(f"evaluation.{name}={getattr(self, name)!r}; "
                                 f"must be an integer >= {low}")

    @classmethod
    def from_mapping(cls, raw: Any) -> "EvaluationConfig":
        """Build from the YAML mapping; ``sweep`` absent or null means no sweep, ``{}`` the paper's grid."""
        raw = dict(raw or {})
        sweep = raw.pop("sweep", None)
        cfg = from_mapping(cls, raw, nested={"sequential": SequentialConfig, "emcdr": EMCDRConfig,
                                             "bag": BagConfig})
        if sweep is None:
            return cfg
        try:
            return dataclasses.replace(cfg, sweep=from_mapping(SweepConfig, sweep))
        except (TypeError, ValueError) as exc:
            raise NestedFieldError(f"sweep: {exc}") from exc

    @property
    def primary(self) -> str:
        """The protocol of validation (early stopping), significance and the headline Table 1."""
        return self.protocols[0]
