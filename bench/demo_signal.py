"""How much cross-domain signal the synthetic demo corpus plants, before any model trains.

A learned model can only beat popularity on the demo by as much as the generator lets it.
This script builds the corpus of a dataset config (``models/data/synthetic.py``), filters and
splits it as the pipeline does, and ranks every test user's target domain (all items seen
in training) three ways, with no learning:

* ``popularity``: training counts, the floor;
* ``source_theme``: the themes of the user's own source-domain items (the shown ones, from
  the hidden item themes) times each item's popularity within its theme; what a model
  that transfers taste across domains can reach;
* ``oracle``: the user's true planted taste times the same within-theme popularity.

The figure is ``source_theme``'s HR@10, the baseline popularity's. When the ratio is near 1
no model can show transfer on this corpus, whatever it learns.

    LGCD_DATASET=demo .venv/bin/python -m bench.demo_signal [--set zipf_exponent=0.8 ...]

Runs in seconds; it writes the corpus to a temporary folder.
"""

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from bench.harness import report
from models.data import filtering, ingest, split, synthetic
from pipeline import settings
from pipeline.config import load_dataset_config


def _parse_overrides(pairs: list[str]) -> dict:
    fields = {f.name: f.type for f in dataclasses.fields(synthetic.SyntheticConfig)}
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in fields:
            raise SystemExit(f"--set {pair}: unknown synthetic field; allowed {sorted(fields)}")
        out[key] = int(value) if fields[key] in (int, "int") else float(value)
    return out


def _corpus(cfg, syn: synthetic.SyntheticConfig):
    with tempfile.TemporaryDirectory() as tmp:
        truth = synthetic.generate(syn, Path(tmp))
        files = [ingest.DomainFiles(dom, Path(tmp) / f"{cat}.json.gz",
                                    Path(tmp) / f"meta_{cat}.json.gz", "amazon2018")
                 for dom, cat in zip("AB", syn.domains, strict=True)]
        raw = ingest.ingest_pair(files)
    core, stats = filtering.filter_pair(raw.interactions, cfg.window_days, cfg.k_core)
    catalog, sequences = split.make_split(
        core, filtering.filter_items(raw.items, core),
        split.SplitConfig(cfg.train_fraction, cfg.seed, cfg.history_policy))
    return truth, stats, catalog, sequences


def _domain_tables(truth, catalog: pl.DataFrame, sequences: pl.DataFrame, n_themes: int):
    """Per domain: true theme of each item index, training counts."""
    theme, counts = {}, {}
    train = sequences.filter(pl.col("split") == "train")
    for d, dom in enumerate("AB"):
        cat = catalog.filter(pl.col("domain") == dom)
        raw_index = np.array([int(item[2:], 16) for item in cat["item"]])  # "B<d><hex>"
        t = np.zeros(int(cat["index"].max()) + 1, dtype=np.int64)
        t[cat["index"].to_numpy()] = truth.item_theme[d][raw_index]
        c = np.zeros(t.size)
        for items, doms in zip(train["items"], train["domains"], strict=True):
            np.add.at(c, [i for i, x in zip(items, doms, strict=True) if x == dom], 1.0)
        theme[dom], counts[dom] = t, c
    return theme, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a SyntheticConfig field of the dataset config")
    args = parser.parse_args()
    cfg = load_dataset_config(settings.dataset_config_path())
    if cfg.format != "synthetic":
        raise SystemExit(f"dataset {cfg.name!r} is not synthetic (format {cfg.format!r})")
    syn = dataclasses.replace(cfg.synthetic, **_parse_overrides(args.set))
    began = time.perf_counter()
    truth, stats, catalog, sequences = _corpus(cfg, syn)
    theme, counts = _domain_tables(truth, catalog, sequences, syn.n_themes)
    test = sequences.filter(pl.col("split") == "test")
    hits: dict[str, list[bool]] = {"popularity": [], "source_theme": [], "oracle": []}
    for user, items, doms, target, tgt in test.select(
            "user", "items", "domains", "target_item", "target_domain").iter_rows():
        src = "B" if tgt == "A" else "A"
        pop, th = counts[tgt] + 1e-3, theme[tgt]  # (N,), (N,)
        within = pop / np.bincount(th, weights=pop, minlength=syn.n_themes)[th]
        mine = np.bincount(theme[src][[i for i, d in zip(items, doms, strict=True) if d == src]],
                           minlength=syn.n_themes) + 0.2
        taste = truth.user_taste[int(user[1:], 16)]  # reviewerID "A<hex>"
        for name, score in (("popularity", pop), ("source_theme", (mine / mine.sum())[th] * within),
                            ("oracle", taste[th] * within)):
            score = np.where(counts[tgt] > 0, score, -1.0)  # rank items seen in training
            hits[name].append(int((score > score[target]).sum()) < 10)
    hr = {name: float(np.mean(h)) for name, h in hits.items()}
    report("demo_signal_source_theme", hr["source_theme"], hr["popularity"],
           "test HR@10, full target-domain ranking", higher_is_better=True,
           oracle_hr10=round(hr["oracle"], 4), test_users=test.height,
           interactions=stats["after_kcore"], items=stats["items"],
           overlapping_users=stats["overlapping_users"],
           overrides=_parse_overrides(args.set), seconds=round(time.perf_counter() - began, 1),
           load_average=round(os.getloadavg()[0], 2))


if __name__ == "__main__":
    main()
