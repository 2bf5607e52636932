"""Stand-ins for the stages before evaluation: a small planted split, untrained encoders, a fixed scorer.

The upstream stages are stubbed (their own tests cover them), so the evaluation, baseline,
sweep and report assets run over tables that take milliseconds to build: item k of A goes
with item k of B, 20 held-out users, two seeds. ``inline_pngs`` reads the plots back out
of the assets' Markdown metadata.
"""

import base64
import dataclasses
import re
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import torch

from models.encoders.sequence import DomainEncoder, EncoderConfig
from models.evaluation.baselines.common import Interactions
from models.evaluation.baselines.popularity import Popularity
from models.evaluation.candidates import sample_all_seeds
from models.evaluation.config import EMCDRConfig, EvaluationConfig, SequentialConfig, SweepConfig
from models.evaluation.ranking import eval_users, rank_users
from models.lgcd.config import LGCDConfig
from models.lgcd.variants import LGCDStageConfig, VariantSpec
from pipeline.config import DatasetConfig
from pipeline.io_managers import VersionStore
from pipeline.storage import Checkpoint
from tests.assets.stubs import table_asset
from tests.conftest import small_demo_config

N_ITEMS = {"A": 24, "B": 30}
SEEDS = (0, 1)
HELD_OUT_USERS = 20  # valid and test users of ``split_tables``


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


def encoder_checkpoints() -> dict[str, Checkpoint]:
    """Untrained domain encoders (d=16, random item texts) as the encoder stage stores them."""
    torch.manual_seed(0)
    encoders = {d: DomainEncoder(EncoderConfig(n_items=n, text_dim=6, d=16, n_heads=2, n_layers=1,
                                               max_len=8), torch.randn(n, 6))
                for d, n in N_ITEMS.items()}
    return {d: Checkpoint(*e.to_checkpoint()) for d, e in encoders.items()}


def stubs(*names: str) -> list[dg.AssetsDefinition]:
    """Stub assets for the named upstream values (every one when none is named).

    ``sequences``, ``item_catalog``, ``pseudo_sequences`` and the untrained
    ``sequence_encoder_a``/``_b`` checkpoints, each published as it is.
    """
    sequences, catalog, pseudo = split_tables()
    values = {"sequences": sequences, "item_catalog": catalog, "pseudo_sequences": pseudo,
              **{f"sequence_encoder_{d.lower()}": c for d, c in encoder_checkpoints().items()}}
    return [table_asset(name, value) for name, value in values.items() if not names or name in names]


def config() -> DatasetConfig:
    """The small demo config with a tiny LGCD, two variants, every baseline and a sweep."""
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


def fast_config(*baselines: str) -> DatasetConfig:
    """``config()`` without training: LGCD ``full`` only (ranked by ``Sine``), no sweep."""
    base = config()
    stage = dataclasses.replace(base.lgcd, variants=(VariantSpec("full"),))
    ev = dataclasses.replace(base.evaluation, baselines=baselines, sweep=None)
    return dataclasses.replace(base, lgcd=stage, evaluation=ev)


class Sine:
    """A fixed, untrained item score: stands in for a trained LGCD in the fast tests."""

    def score(self, users, target_domain, candidates):
        table = torch.sin(torch.arange(N_ITEMS[target_domain], dtype=torch.float32) * 3.1)
        table = table[None].repeat(len(users), 1)  # (B, N)
        return table if candidates is None else table.gather(1, candidates)


def sine_ranks(sequences: pl.DataFrame, candidates: pl.DataFrame, cfg: DatasetConfig) -> pl.DataFrame:
    """``Sine``'s ranks as model ``lgcd`` on every seed and protocol of ``cfg``."""
    users = eval_users(sequences)
    return pl.concat([rank_users(Sine(), users, candidates, s, "lgcd", 64, cfg.evaluation.protocols)
                      for s in cfg.evaluation.seeds])


def fake_lgcd_ranks(cfg: DatasetConfig) -> dg.AssetsDefinition:
    """A ``ranks_lgcd`` asset that ranks with ``Sine`` instead of trained LGCD models."""
    @dg.asset(name="ranks_lgcd", code_version="fake")
    def ranks_lgcd(store: VersionStore, sequences: pl.DataFrame,
                   eval_candidates: pl.DataFrame) -> dg.MaterializeResult:
        return store.publish(sine_ranks(sequences, eval_candidates, cfg))
    return ranks_lgcd


def held_out_candidates(cfg: DatasetConfig) -> pl.DataFrame:
    """What ``eval_candidates`` would store for ``split_tables`` under ``cfg``."""
    sequences, _, _ = split_tables()
    ev = cfg.evaluation
    return sample_all_seeds(sequences.filter(pl.col("split") != "train"), N_ITEMS,
                            ev.n_negatives, ev.protocols, ev.seeds)


def ranks_of_two_models(cfg: DatasetConfig) -> dict[str, pl.DataFrame]:
    """``ranks_popularity`` and ``ranks_lgcd`` (``Sine``) on ``held_out_candidates``."""
    sequences, _, _ = split_tables()
    cands, users = held_out_candidates(cfg), eval_users(sequences)
    popularity = Popularity.fit(Interactions.from_sequences(sequences), N_ITEMS)
    pop = pl.concat([rank_users(popularity, users, cands, s, "popularity", 64,
                                cfg.evaluation.protocols) for s in cfg.evaluation.seeds])
    return {"ranks_popularity": pop, "ranks_lgcd": sine_ranks(sequences, cands, cfg)}


def inline_pngs(markdown: str) -> list[bytes]:
    """The images of ``markdown`` written as base64 data URIs (models/report/figures.py)."""
    return [base64.b64decode(b) for b in re.findall(r"base64,([A-Za-z0-9+/=]+)\)", markdown)]
