"""Figure 3: ranks of the LGCD sweep points (nK, T, lambda), one trained model per point.

The points are extra LGCD variants (models/evaluation/plan.py ``sweep_points``), trained by
the LGCD stage (assets/lgcd.py); this asset ranks them on
the first evaluation seed's candidate lists, under every protocol (Figure 3 shows the
primary one; the stored table keeps them all). It exists only when the dataset YAML
has an ``evaluation.sweep`` section; the ``sweep`` job materializes it with its models.
"""

import dagster as dg
import polars as pl

from assets import groups, lgcd
from assets.encoders import asset_name as encoder_asset
from models.device import torch_threads
from models.evaluation.lgcd import rank_lgcd
from models.evaluation.plan import sweep_points
from models.evaluation.ranking import eval_users
from models.report.sweep import sweep_markdown, sweep_metrics
from models.report.tables import domain_names
from pipeline.config import DatasetConfig
from pipeline.errors import user_errors
from pipeline.executors import step_threads
from pipeline.io_managers import VersionStore
from pipeline.storage import Checkpoint
from pipeline.versioning import code_version

ASSET = "ranks_sweep"


def build(cfg: DatasetConfig) -> list[dg.AssetsDefinition]:
    ev = cfg.evaluation
    points = sweep_points(cfg.lgcd, ev.sweep)
    if not points:
        return []
    specs = list(dict.fromkeys(p.spec.name for p in points))
    ins = {f"m_{i}": dg.AssetIn(key=lgcd.asset_name(name)) for i, name in enumerate(specs)}
    ins |= {"enc_a": dg.AssetIn(key=encoder_asset("A")), "enc_b": dg.AssetIn(key=encoder_asset("B"))}
    seed = ev.seeds[0]

    @dg.asset(name=ASSET, group_name=groups.EVALUATION, ins=ins, kinds={"pytorch", "parquet"},
              code_version=code_version("sweep2", ev.sweep, seed, ev.protocols, specs))
    def ranks_sweep(context: dg.AssetExecutionContext, store: VersionStore, sequences: pl.DataFrame,
                    eval_candidates: pl.DataFrame, enc_a: Checkpoint, enc_b: Checkpoint,
                    **models: Checkpoint) -> dg.MaterializeResult:
        """Rank of the ground truth for every held-out user under each sweep point's model."""
        users = eval_users(sequences)
        frames = []
        with user_errors(ValueError), torch_threads(step_threads(ev.threads)):
            for point in points:
                ckpt = models[f"m_{specs.index(point.spec.name)}"]
                ranks = rank_lgcd(ckpt, {"A": enc_a, "B": enc_b}, users, eval_candidates, seed,
                                  "lgcd_sweep", ev.batch_size, ev.protocols)
                frames.append(ranks.with_columns(param=pl.lit(point.param),
                                                 value=pl.lit(float(point.value))))
                context.log.info(f"sweep {point.param}={point.value}: {point.spec.name}")
        table = pl.concat(frames)
        return store.publish(table, points=len(points), seed=seed,
                             figure3=dg.MetadataValue.md(sweep_markdown(
                                 sweep_metrics(table), domain_names(cfg.domain_categories()),
                                 ev.primary)))

    return [ranks_sweep]
