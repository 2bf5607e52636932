"""Stage 5: candidate lists, LGCD ranks per variant and seed, and the combined evaluation.

``eval_candidates`` is sampled once per seed and protocol (``evaluation.protocols``),
and every ``ranks_*`` asset (LGCD variants here, baselines in assets/baselines.py)
ranks each trained model under every protocol on those same lists with
models/evaluation/ranking.py. LGCD seed replicas and sweep points are extra LGCD variants
(models/evaluation/plan.py) that the LGCD stage trains (assets/lgcd.py); this stage only
ranks them.
"""

import dagster as dg
import polars as pl

from assets import groups, lgcd
from assets.encoders import asset_name as encoder_asset
from models.device import torch_threads
from models.evaluation.candidates import describe_pool, sample_all_seeds
from models.evaluation.lgcd import rank_lgcd
from models.evaluation.plan import Replica, replicas
from models.evaluation.ranking import eval_users, metric_rows
from models.report.tables import domain_names, summarize, table1_section
from pipeline.config import DatasetConfig
from pipeline.errors import DataError, user_errors
from pipeline.executors import step_threads
from pipeline.io_managers import VersionStore
from pipeline.storage import Checkpoint, checkpoint_hash
from pipeline.versioning import code_version


def n_items(item_catalog: pl.DataFrame) -> dict[str, int]:
    return dict(item_catalog.group_by("domain").len().iter_rows())


def tables_per_protocol(summary: pl.DataFrame, models: list[str], cfg: DatasetConfig,
                        split: str = "test") -> str:
    """One Table 1 per protocol, each under a heading that states the protocol in words."""
    ev, names = cfg.evaluation, domain_names(cfg.domain_categories())
    return "\n\n".join(table1_section(summary, models, names, p, ev.n_negatives, split)
                       for p in ev.protocols)


def rank_metadata(ranks: pl.DataFrame, cfg: DatasetConfig, **extra) -> dict:
    """Metadata of a ranks table: users, seeds, primary-protocol test means, a table per protocol."""
    summary = summarize(ranks)
    test = summary.filter((pl.col("split") == "test") & (pl.col("target_domain") == "all")
                          & (pl.col("protocol") == cfg.evaluation.primary))
    means = {f"test_{m}": round(test[f"{m}_mean"][0], 4) for m in ("hr@10", "ndcg@10")} \
        if test.height == 1 else {}
    models = ranks["model"].unique(maintain_order=True).to_list()
    return {"users": ranks.filter(pl.col("seed") == ranks["seed"].min())["user"].n_unique(),
            "seeds": dg.MetadataValue.json(sorted(ranks["seed"].unique().to_list())),
            "protocols": dg.MetadataValue.json(list(cfg.evaluation.protocols)),
            **means, "test_metrics": dg.MetadataValue.md(tables_per_protocol(summary, models, cfg)),
            **extra}


def _candidates_asset(cfg: DatasetConfig) -> dg.AssetsDefinition:
    ev = cfg.evaluation

    @dg.asset(group_name=groups.EVALUATION, kinds={"polars", "parquet"},
              code_version=code_version("cand2", ev.seeds, ev.n_negatives, ev.protocols))
    def eval_candidates(store: VersionStore, sequences: pl.DataFrame,
                        item_catalog: pl.DataFrame) -> dg.MaterializeResult:
        """Ground truth plus sampled negatives for every valid and test user, per seed and protocol."""
        held_out = sequences.filter(pl.col("split").is_in(["valid", "test"]))
        with user_errors(ValueError):
            if held_out.is_empty():
                raise DataError("sequences has no valid or test users to evaluate")
            table = sample_all_seeds(held_out, n_items(item_catalog), ev.n_negatives,
                                     ev.protocols, ev.seeds)
        slot = {p: i for i, p in enumerate(ev.protocols)}
        effective = (table.group_by("protocol", "split", "target_domain")
                     .agg(pl.len().alias("users"), pl.col("n_target_negatives").mean())
                     .sort(pl.col("protocol").replace_strict(slot), "split", "target_domain"))
        return store.publish(
            table, protocol=describe_pool(ev.primary, ev.n_negatives),
            protocols=dg.MetadataValue.md("\n".join(
                f"* `{p}`{' (primary)' if p == ev.primary else ''}: "
                f"{describe_pool(p, ev.n_negatives)}" for p in ev.protocols)),
            n_negatives=ev.n_negatives, seeds=dg.MetadataValue.json(list(ev.seeds)),
            effective_negatives=dg.MetadataValue.md(
                "| protocol | split | target | users per seed | mean target-domain negatives |\n"
                "|---|---|---|---:|---:|\n"
                + "\n".join(f"| {p} | {s} | {d} | {n // len(ev.seeds)} | {m:.1f} |"
                            for p, s, d, n, m in effective.iter_rows())))

    return eval_candidates


def _lgcd_ranks_asset(cfg: DatasetConfig, model: str, reps: list[Replica]) -> dg.AssetsDefinition:
    ev = cfg.evaluation
    ins = {f"seed_{r.seed}": dg.AssetIn(key=lgcd.asset_name(r.spec.name)) for r in reps}
    ins |= {"enc_a": dg.AssetIn(key=encoder_asset("A")), "enc_b": dg.AssetIn(key=encoder_asset("B"))}

    @dg.asset(name=f"ranks_{model}", group_name=groups.EVALUATION, ins=ins,
              kinds={"pytorch", "parquet"},
              code_version=code_version("lgcdrank2", ev.seeds, ev.protocols,
                                        [r.spec.name for r in reps]))
    def lgcd_ranks(context: dg.AssetExecutionContext, store: VersionStore, sequences: pl.DataFrame,
                   eval_candidates: pl.DataFrame, enc_a: Checkpoint, enc_b: Checkpoint,
                   **checkpoints: Checkpoint) -> dg.MaterializeResult:
        """Rank of the ground truth for every held-out user and protocol, one trained LGCD per seed."""
        versions = {"A": checkpoint_hash(enc_a), "B": checkpoint_hash(enc_b)}
        users = eval_users(sequences)
        frames = []
        with user_errors(ValueError), torch_threads(step_threads(ev.threads)):
            for r in reps:
                ckpt = checkpoints[f"seed_{r.seed}"]
                trained_on = ckpt.extra.get("encoder_versions", versions)
                if trained_on != versions:
                    raise DataError(f"{lgcd.asset_name(r.spec.name)} was trained on other encoder "
                                    "versions than the current sequence_encoder_a/_b; "
                                    "re-materialize it")
                frames.append(rank_lgcd(ckpt, {"A": enc_a, "B": enc_b}, users, eval_candidates,
                                        r.seed, model, ev.batch_size, ev.protocols))
                context.log.info(f"{model} seed {r.seed}: ranked {len(users)} users under "
                                 f"{list(ev.protocols)}")
        ranks = pl.concat(frames)
        return store.publish(ranks, **rank_metadata(ranks, cfg, variant=reps[0].variant))

    return lgcd_ranks


def _replicas_by_model(cfg: DatasetConfig) -> dict[str, list[Replica]]:
    """Result-table model name -> the trained LGCD model to rank on each evaluation seed."""
    ev = cfg.evaluation
    by_model: dict[str, list[Replica]] = {}
    for r in replicas(cfg.lgcd, ev.seeds, ev.variant_seeds):
        by_model.setdefault(r.model, []).append(r)
    return by_model


def rank_asset_names(cfg: DatasetConfig) -> list[str]:
    """Every ``ranks_*`` asset that feeds ``evaluation``: baselines, then LGCD variants."""
    return ([f"ranks_{b}" for b in cfg.evaluation.baselines]
            + [f"ranks_{m}" for m in _replicas_by_model(cfg)])


def _evaluation_asset(cfg: DatasetConfig) -> dg.AssetsDefinition:
    names = rank_asset_names(cfg)

    @dg.asset(group_name=groups.EVALUATION, kinds={"polars", "parquet"},
              ins={n: dg.AssetIn(key=n) for n in names},
              code_version=code_version("eval2", names))
    def evaluation(store: VersionStore, **ranks: pl.DataFrame) -> dg.MaterializeResult:
        """Per-user ranks of every model and HR@k / NDCG@k per model, seed, protocol, split, domain."""
        everything = pl.concat([ranks[n] for n in names])
        metrics = metric_rows(everything)
        models = everything["model"].unique(maintain_order=True).to_list()
        summary = summarize(everything)
        return store.publish(
            {"ranks": everything, "metrics": metrics}, models=dg.MetadataValue.json(models),
            protocols=dg.MetadataValue.json(list(cfg.evaluation.protocols)),
            test=dg.MetadataValue.md(tables_per_protocol(summary, models, cfg, "test")),
            valid=dg.MetadataValue.md(tables_per_protocol(summary, models, cfg, "valid")))

    return evaluation


def build(cfg: DatasetConfig) -> list[dg.AssetsDefinition]:
    return [_candidates_asset(cfg),
            *[_lgcd_ranks_asset(cfg, m, reps) for m, reps in _replicas_by_model(cfg).items()],
            _evaluation_asset(cfg)]
