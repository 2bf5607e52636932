"""Iterative k-core (models/data/filtering.py) vs a pandas reference on >= 10M interactions.

    .venv/bin/python -m bench.bench_kcore [--interactions 10000000] [--k 5]

The interactions have the long tails of real review data (log-normal user
activity and item popularity, most users below k), so the k-core takes several
rounds and removes most rows. The reference drops users, then items, below k
until nothing changes; both outputs must be identical, row for row.
Target: >= 10x faster than pandas (harness ratio >= 10). Peak RSS is the k-core's
own (the kernel's counter is reset after the input is built); the input frame is in it.
The machine limit printed beside it is the memory bandwidth (a numpy copy): the
k-core's dense-id tables are lookups into memory, not arithmetic.
"""

import argparse
import os
import resource

import numpy as np
import polars as pl

from bench.harness import cpu_model, memory_bandwidth_gbs, report, reset_peak_rss, rss_mb, timed
from models.data.filtering import kcore


def interactions(n: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n_users, n_items = max(n // 3, 1), max(n // 10, 1)
    user_w = rng.lognormal(0.0, 1.5, n_users)
    item_w = rng.lognormal(0.0, 2.0, n_items)
    users = rng.choice(n_users, n, p=user_w / user_w.sum())
    items = rng.choice(n_items, n, p=item_w / item_w.sum())
    frame = pl.DataFrame({"u": users, "i": items, "t": rng.integers(1_500_000_000, 1_600_000_000, n)})
    return frame.select(
        user=pl.lit("A") + pl.col("u").cast(pl.String).str.zfill(12),
        item=pl.lit("B") + pl.col("i").cast(pl.String).str.zfill(9),
        timestamp=pl.col("t"), rating=pl.lit(5.0),
        domain=pl.when(pl.col("i") % 5 < 2).then(pl.lit("A")).otherwise(pl.lit("B")),
    )


def timed_cpu(fn):
    """(wall s, CPU s, result): CPU time is barely moved by other jobs on a shared box."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    wall, result = timed(fn)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return wall, usage.ru_utime + usage.ru_stime - cpu, result


def pandas_kcore(frame, k: int):
    """Reference: drop users below k, then items below k, until nothing changes."""
    while True:
        before = len(frame)
        frame = frame[frame.groupby("user")["user"].transform("size") >= k]
        frame = frame[frame.groupby(["item", "domain"])["item"].transform("size") >= k]
        if len(frame) == before:
            return frame


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--interactions", type=int, default=10_000_000)
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()
    frame = interactions(args.interactions)
    input_mb = rss_mb("VmRSS")
    reset_peak_rss()
    ours_s, ours_cpu, (core, rounds) = timed_cpu(lambda: kcore(frame, args.k))
    peak_mb = rss_mb()
    pdf = frame.to_pandas()
    ref_s, ref_cpu, ref = timed_cpu(lambda: pandas_kcore(pdf, args.k))
    identical = pl.from_pandas(ref.reset_index(drop=True)).equals(core)
    assert identical, "polars and pandas k-cores differ"
    report("kcore_vs_pandas", ours_s, ref_s, "s", interactions=frame.height, k=args.k,
           kept=core.height, rounds=rounds, identical=identical, target_ratio=10,
           cpu_s=round(ours_cpu, 3), pandas_cpu_s=round(ref_cpu, 3),
           cpu_ratio=round(ref_cpu / ours_cpu, 3), rss_before_mb=round(input_mb),
           peak_rss_mb=round(peak_mb),
           bytes_per_row_over_input=round((peak_mb - input_mb) * 2**20 / frame.height),
           memory_bandwidth_gbs=round(memory_bandwidth_gbs(), 1), cpu=cpu_model(),
           load_avg_1m=round(os.getloadavg()[0], 2))


if __name__ == "__main__":
    main()
