"""Where models differ: NDCG@10 by how popular the held-out target item is in training.

On the Food-Kitchen release the test targets are rarer than the valid ones (Food median
14 training interactions against 25), so a model that early-stops on valid is tuned for
a mix that test does not have. This script reads a dataset's stored ``ranks_<model>``
assets and ``sequences`` (one pipeline run first) and prints, per split, target domain
and popularity bucket, each model's NDCG@10 against a baseline model's on the same users:

    LGCD_DATASET=food_kitchen_llmcdsr .venv/bin/python -m bench.target_popularity \\
        --models lgcd,sasrec,emcdr --baseline gru4rec [--protocol all]

It trains nothing; seeds are pooled (``rows`` = users x seeds).
"""

import argparse
import os
from pathlib import Path

import polars as pl

from bench.harness import latest_stored, report
from models.evaluation.ranking import metrics_by_target_popularity
from pipeline import settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lgcd", help="comma-separated model names")
    parser.add_argument("--baseline", default="gru4rec")
    parser.add_argument("--protocol", default="all")
    args = parser.parse_args()
    root = Path(settings.storage_root_default())
    models = [m for m in args.models.data.split(",") if m and m != args.baseline]
    ranks = pl.concat([latest_stored(root, f"ranks_{m}") for m in [args.baseline, *models]])
    table = metrics_by_target_popularity(ranks.filter(pl.col("protocol") == args.protocol),
                                         latest_stored(root, "sequences"))
    if table.is_empty():
        raise SystemExit(f"no ranks under protocol {args.protocol!r}")
    load = round(os.getloadavg()[0], 2)
    keys = ["split", "target_domain", "bucket"]
    base = table.filter(pl.col("model") == args.baseline).select(
        *keys, pl.col("ndcg@10").alias("baseline"))
    for row in table.filter(pl.col("model") != args.baseline).join(base, on=keys).iter_rows(
            named=True):
        report(f"ndcg10_{row['model']}_{row['split']}_{row['target_domain']}_{row['bucket']}",
               row["ndcg@10"], row["baseline"], "NDCG@10", higher_is_better=True,
               baseline_model=args.baseline, protocol=args.protocol, rows=row["rows"],
               median_target_count=row["median_count"], load_average=load)


if __name__ == "__main__":
    main()
