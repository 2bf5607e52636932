"""One entry point for every baseline: fit with a seed, early-stopped on the stored validation lists."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import polars as pl

from models.encoders.sequence import DomainEncoder
from models.evaluation.baselines.bag import train_bag
from models.evaluation.baselines.common import Interactions, JointVocab
from models.evaluation.baselines.emcdr import train_emcdr
from models.evaluation.baselines.item_knn import CrossDomainItemKNN
from models.evaluation.baselines.popularity import Popularity
from models.evaluation.baselines.sequential import train_sequential
from models.evaluation.config import BASELINES, EvaluationConfig
from models.evaluation.ranking import EvalUser, Scorer, validation_ndcg


@dataclass
class FittedBaseline:
    scorer: Scorer
    best_epoch: float = 0  # 0 for models without training epochs
    val_ndcg10: float | None = None
    history: list[dict[str, float]] = field(default_factory=list)


def fit_baseline(name: str, train: Interactions, n_items: dict[str, int], cfg: EvaluationConfig,
                 seed: int, users: Sequence[EvalUser], candidates: pl.DataFrame,
                 encoders: dict[str, DomainEncoder] | None = None,
                 on_epoch: Callable[[dict[str, float]], None] | None = None,
                 on_progress: Callable[[str], None] | None = None) -> FittedBaseline:
    """Fit baseline ``name`` for one seed; trained ones keep their best validation epoch.

    ``on_epoch`` gets each validation's row (epoch, loss, val_ndcg@10, seconds) and
    ``on_progress`` a progress line at most every 30 s.
    """
    def validate(scorer: Scorer) -> float:
        return validation_ndcg(scorer, users, candidates, seed, batch_size=cfg.batch_size)

    if name == "popularity":
        return FittedBaseline(Popularity.fit(train, n_items))
    if name == "target_popularity":
        return FittedBaseline(Popularity.fit(train, n_items, overlap_only=True))
    if name == "item_knn":
        return FittedBaseline(CrossDomainItemKNN.fit(train, n_items))
    if name in ("sasrec", "gru4rec"):
        scorer, res = train_sequential(name, train, JointVocab(n_items), cfg.sequential, seed,
                                       validate, on_epoch, on_progress)
    elif name == "bag":
        scorer, res = train_bag(train, n_items, cfg.bag, seed, validate, on_epoch)
    elif name == "emcdr":
        if encoders is None:
            raise ValueError("emcdr needs the pre-trained domain encoders")
        scorer, res = train_emcdr(train, encoders, cfg.emcdr, seed, validate, on_epoch)
    else:
        raise ValueError(f"unknown baseline {name!r}; allowed {list(BASELINES)}")
    return FittedBaseline(scorer, res.best_epoch, res.best_metric, res.history)
