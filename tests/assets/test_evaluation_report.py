"""Evaluation through Dagster: candidates, baselines, LGCD seeds, sweep and the report.

The upstream stages are stubbed with a small planted split and untrained encoders (their
own tests cover them), so this run exercises only the evaluation graph: every ranks_*
asset must rank the same users on the same stored lists, under both candidate protocols,
and the report must carry both tables (Table 1 once per protocol), the paper comparison,
the significance test and the plots.
"""

import base64
import dataclasses
import re
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
import torch

from assets import baselines, evaluation, lgcd, report, sweep
from models.encoders.sequence import DomainEncoder, EncoderConfig
from models.evaluation.config import EMCDRConfig, EvaluationConfig, SequentialConfig, SweepConfig
from models.evaluation.ranking import eval_users, rank_users
from models.lgcd.config import LGCDConfig
from models.lgcd.variants import LGCDStageConfig, VariantSpec
from pipeline import storage
from pipeline.io_managers import VersionedIOManager, VersionStore
from pipeline.storage import Checkpoint
from tests.conftest import small_demo_config

N_ITEMS = {"A": 24, "B": 30}
SEEDS = (0, 1)


def split_tables(seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(sequences, item_catalog, pseudo_sequences): item k of A goes with item k of B."""
    rng = np.random.default_rng(seed)
    seqs, pseudo = [], []

    def row(user, split, kind, items, domains, target=None, tgt=None, src=None):
        seqs.append({"user": user, "split": split, "kind": kind, "items": items, "domains": domains,
                     "timestamps": list(range(len(items))), "target_item": target,
                     "target_domain": tgt, "source_domain": src})

    for u in range(80):
        src, tgt = ("A", "B") if u % 2 else ("B", "A")
        k = [int(v) for v in rng.integers(0, 20, size=3)]
        if u < 30:
            row(f"o{u:02d}", "train", "overlap", k[:2] + [k[0]], [src, src, tgt], k[1], tgt, src)
        elif u < 60:
            row(f"s{u:02d}", "train", "single", k, [src] * 3, src=src)
            pseudo.append({"user": f"s{u:02d}", "source_domain": src, "target_domain": tgt,
                           "items": k + k[:2], "domains": [src] * 3 + [tgt] * 2,
                           "is_pseudo": [False] * 3 + [True] * 2, "pseudo_items": k[:2],
                           "fallback": False})
        else:
            row(f"e{u:02d}", "test" if u % 4 < 2 else "valid", "overlap", k[:2], [src, src],
                k[0], tgt, src)
    catalog = pl.DataFrame([{"item": f"{d}{i}", "domain": d, "index": i, "title": f"t{i}",
                             "text": f"t{i}"} for d, n in N_ITEMS.items() for i in range(n)],
                           schema_overrides={"index": pl.Int32})
    schema = {"items": pl.List(pl.Int32), "target_item": pl.Int32, "target_domain": pl.String,
              "timestamps": pl.List(pl.Int64)}
    pseudo_schema = {"items": pl.List(pl.Int32), "pseudo_items": pl.List(pl.Int32)}
    return (pl.DataFrame(seqs, schema_overrides=schema), catalog,
            pl.DataFrame(pseudo, schema_overrides=pseudo_schema))


def stubs() -> list:
    sequences, catalog, pseudo = split_tables()
    torch.manual_seed(0)
    encoders = {d: DomainEncoder(EncoderConfig(n_items=n, text_dim=6, d=16, n_heads=2, n_layers=1,
                                               max_len=8), torch.randn(n, 6))
                for d, n in N_ITEMS.items()}
    values = {"sequences": sequences, "item_catalog": catalog, "pseudo_sequences": pseudo,
              **{f"sequence_encoder_{d.lower()}": Checkpoint(*e.to_checkpoint())
                 for d, e in encoders.items()}}

    def stub(name, value):
        @dg.asset(name=name, code_version="stub")
        def _stub(store: VersionStore) -> dg.MaterializeResult:
            return store.publish(value)
        return _stub

    return [stub(name, value) for name, value in values.items()]


def config():
    cfg = small_demo_config()
    model = LGCDConfig(d=16, max_len=8, T=6, n_k=2, batch_size=16, overlap_batch_size=8, epochs=2,
                       patience=2)
    stage = LGCDStageConfig(model=model, variants=(VariantSpec("full"),
                                                   VariantSpec("wo_diffusion", "wo_diffusion")),
                            device="cpu", threads=1, valid_negatives=20)
    ev = EvaluationConfig(seeds=SEEDS, n_negatives=40, permutations=200,
                          sequential=SequentialConfig(d=16, n_layers=1, max_len=8, epochs=2),
                          emcdr=EMCDRConfig(hidden=16, epochs=3, patience=3),
                          sweep=SweepConfig(n_k=(1, 2), T=(6,), lam=(0.5,), epochs=1))
    # the Food-Kitchen release's format: the report adds the paper's published numbers (the
    # release folder is never read: the stubs stand in for the stages that would read it)
    return dataclasses.replace(cfg, format="llmcdsr", release_dir=Path("unused-release"),
                               encoder=dataclasses.replace(cfg.encoder, d=16, max_len=8),
                               lgcd=stage, evaluation=ev)


class Sine:
    """A fixed, untrained item score: stands in for a trained LGCD in the fast test."""

    def score(self, users, target_domain, candidates):
        table = torch.sin(torch.arange(N_ITEMS[target_domain], dtype=torch.float32) * 3.1)
        table = table[None].repeat(len(users), 1)  # (B, N)
        return table if candidates is None else table.gather(1, candidates)


def fake_lgcd_ranks(cfg) -> dg.AssetsDefinition:
    @dg.asset(name="ranks_lgcd", code_version="fake")
    def ranks_lgcd(store: VersionStore, sequences: pl.DataFrame,
                   eval_candidates: pl.DataFrame) -> dg.MaterializeResult:
        users = eval_users(sequences)
        ranks = pl.concat([rank_users(Sine(), users, eval_candidates, s, "lgcd", 64,
                                      cfg.evaluation.protocols) for s in cfg.evaluation.seeds])
        return store.publish(ranks)
    return ranks_lgcd


def test_both_protocols_from_the_same_models_and_one_table1_each(tmp_path, instance):
    """Fast: the evaluation graph without training (popularity, item-KNN, a fixed scorer)."""
    base = config()
    stage = dataclasses.replace(base.lgcd, variants=(VariantSpec("full"),))
    ev = dataclasses.replace(base.evaluation, baselines=("popularity", "item_knn"), sweep=None)
    cfg = dataclasses.replace(base, lgcd=stage, evaluation=ev)
    assert ev.protocols == ("all", "target")  # the default: the paper's first, then LLMCDSR's
    store = VersionStore(root=str(tmp_path / "storage"))
    assets = [*stubs(), evaluation._candidates_asset(cfg), *baselines.build(cfg),
              fake_lgcd_ranks(cfg), evaluation._evaluation_asset(cfg), *report.build(cfg)]
    resources = {"store": store, "io_manager": VersionedIOManager(store=store)}
    assert dg.materialize(assets, resources=resources, instance=instance).success

    def latest(key):
        return instance.get_latest_materialization_event(dg.AssetKey(key)).asset_materialization

    # every held-out user has one list per seed and protocol, the primary protocol first
    cands = storage.read(latest("eval_candidates").metadata["path"].value)
    assert cands["protocol"].unique(maintain_order=True).to_list() == ["all", "target"]
    per_user = cands.group_by("seed", "split", "user").agg(pl.col("protocol").n_unique())
    assert (per_user["protocol"] == 2).all() and per_user.height == 20 * len(SEEDS)
    effective = latest("eval_candidates").metadata["effective_negatives"].value
    assert "| all | test | A |" in effective and "| target | test | A |" in effective

    # one popularity model per seed, ranked under both protocols: "target" (here the whole
    # target catalog, 40 negatives > its size) holds every item of the "all" list's target part
    ranks = storage.read(latest("ranks_popularity").metadata["path"].value)
    wide = ranks.pivot("protocol", index=["seed", "split", "user", "target_domain"],
                       values=["rank", "n_candidates"])
    assert wide.height == per_user.height
    assert (wide["n_candidates_target"] == wide["target_domain"].replace_strict(
        N_ITEMS, return_dtype=pl.Int32)).all()
    assert (wide["n_candidates_all"] <= wide["n_candidates_target"]).all()
    assert (wide["n_candidates_all"] < wide["n_candidates_target"]).any()
    # same scores, a superset of competitors: the truth never ranks better under "target"
    assert (wide["rank_all"] <= wide["rank_target"]).all()

    meta = latest("report").metadata
    assert meta["protocols"].value == ["all", "target"]
    table1, table1_target = meta["table1"].value, meta["table1_target"].value
    assert table1.startswith("**Protocol `all`**: 1 ground truth + 40 negatives sampled from all")
    assert "effective candidates per test user: Food" in table1
    assert table1_target.startswith("**Protocol `target`**: 1 ground truth + 40 negatives sampled "
                                    "from the target domain")
    assert "Food 24.0, Kitchen 30.0" in table1_target  # the whole (small) target catalogs
    for table in (table1, table1_target):
        assert "| model | Food HR@5 | Food HR@10 |" in table
        assert "| popularity |" in table and "| item_knn |" in table and "| lgcd |" in table
    assert "table1_all" not in meta  # the primary protocol is ``table1``
    assert "under protocol `all`" in meta["significance"].value
    assert meta["paper_comparison"].value.startswith("**Protocol `all`**")
    tables = storage.read(meta["path"].value)
    for name in ("results", "summary"):
        assert set(tables[name]["protocol"]) == {"all", "target"}
    summary = tables["summary"]
    assert summary.group_by("model", "protocol", "split", "target_domain").len()["len"].max() == 1
    assert set(tables["significance"]["protocol"]) == {"all"}


@pytest.mark.slow
def test_report_materializes_with_both_tables(tmp_path, instance):
    cfg = config()
    store = VersionStore(root=str(tmp_path / "storage"))
    assets = [*stubs(), *lgcd.build(cfg), *evaluation.build(cfg), *baselines.build(cfg),
              *sweep.build(cfg), *report.build(cfg)]
    resources = {"store": store, "io_manager": VersionedIOManager(store=store)}
    assert dg.materialize(assets, resources=resources, instance=instance).success

    def latest(key):
        return instance.get_latest_materialization_event(dg.AssetKey(key)).asset_materialization

    # seed replicas and sweep points were trained as LGCD assets of their own
    for name in ("lgcd_model_full_seed1", "lgcd_model_wo_diffusion_seed1", "lgcd_model_sweep_n_k_1",
                 "lgcd_model_sweep_lam_0p5"):
        assert latest(name) is not None
    assert latest("lgcd_model_full_seed1").metadata["variant"].value == "full_seed1"

    everything = storage.read(latest("evaluation").metadata["path"].value)
    ranks = everything["ranks"]
    models = set(ranks["model"])
    assert models == {"popularity", "target_popularity", "item_knn", "bag", "sasrec", "gru4rec",
                      "emcdr", "lgcd", "lgcd_wo_diffusion"}
    # identical lists: every model ranks the same users on lists of the same size per seed
    lists = ranks.group_by("seed", "protocol", "split", "user").agg(
        pl.col("n_candidates").n_unique().alias("k"), pl.len().alias("models"))
    assert (lists["k"] == 1).all() and (lists["models"] == len(models)).all()
    assert (ranks["rank"] < ranks["n_candidates"]).all() and (ranks["rank"] >= 0).all()
    assert sorted(ranks["seed"].unique()) == list(SEEDS)

    meta = latest("report").metadata
    table1, table3 = meta["table1"].value, meta["table3"].value
    assert "| model | Food HR@5 | Food HR@10 | Food NDCG@5 | Food NDCG@10 |" in table1
    assert "| sasrec |" in table1 and "| lgcd |" in table1 and "±" in table1
    assert table1.startswith("**Protocol `all`**") and "| sasrec |" in meta["table1_target"].value
    assert "| lgcd_wo_diffusion |" in table3 and "Kitchen NDCG@5" in table3
    assert "| Table 1 | lgcd (LGCD) | Food | HR@5 |" in meta["paper_comparison"].value
    assert "permutation test" in meta["significance"].value
    assert "| n_k | 1 |" in meta["figure3"].value
    for key in ("metric_bars", "figure3_plot"):
        png = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)\)", meta[key].value).group(1))
        assert png.startswith(b"\x89PNG")
    tables = storage.read(latest("report").metadata["path"].value)
    assert set(tables) == {"results", "summary", "significance", "paper_comparison", "sweep"}
    assert tables["summary"].filter(pl.col("model") == "lgcd")["seeds"].max() == len(SEEDS)
