"""Review ingestion vs the decompression floor (`gzip -dc`) and a json.loads loop.

    .venv/bin/python -m bench.bench_ingest [--reviews 5000000] [--cache /tmp/lgcd-bench]
    .venv/bin/python -m bench.bench_ingest --reviews 20000000   # four copies of the 5M file

The input is the synthetic 2018-format corpus (models/data/synthetic.py) with both
domains' review files joined into one multi-member gzip file, generated once into
``--cache`` and reused, with a metadata file of every reviewed item. All timings run
on that file in the same run. In a fresh process (so that its peak resident memory is
its own) the benchmark times the reader (``spill_records``: parse and spill by user,
the figure) and then the whole ``ingest_pair`` of the file as one domain (spill,
metadata, duplicates, Parquet output). Target: reader <= 1.3 x `gzip -dc` (harness
ratio >= 0.77) and peak RSS <= 1 GB at any size.
"""

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import cpu_model, report, rss_mb


def cpu_s(who: int = resource.RUSAGE_SELF) -> float:
    """User + system CPU seconds: unlike wall time, barely moved by other jobs on the box."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


BASE = 5_000_000  # larger files are copies of this one: generating 20M at once needs ~20 GB


def corpus(n_reviews: int, cache: Path) -> Path:
    """``reviews_<n>.json.gz`` in the cache, generating it on first use.

    Above ``BASE`` reviews (a multiple of it), the file is the base file repeated with
    each copy's reviewer IDs prefixed (``C0-``, ``C1-``, ...), so that copies are new users rather
    than duplicate reviews. gzip members concatenate into one valid stream.
    """
    # the copies' name differs from the plain copies an older version of this script cached
    suffix = "_prefixed" if n_reviews > BASE else ""
    target = cache / f"reviews_{n_reviews}{suffix}.json.gz"
    if target.is_file():
        return target
    if n_reviews > BASE:
        if n_reviews % BASE:
            raise SystemExit(f"--reviews above {BASE} must be a multiple of it")
        base = corpus(BASE, cache)
        partial = target.with_suffix(".partial")
        with partial.open("wb") as out:
            for copy in range(n_reviews // BASE):
                prefix = f'"reviewerID": "C{copy}-'
                subprocess.run(f"gzip -dc '{base}' | sed 's/\"reviewerID\": \"/{prefix}/' "
                               "| gzip -1", shell=True, check=True, stdout=out)
        partial.rename(target)
        return target
    from models.data.synthetic import SyntheticConfig, generate

    folder = cache / f"synthetic_{n_reviews}"
    truth = generate(SyntheticConfig(n_reviews=n_reviews, seed=7), folder)
    partial = target.with_suffix(".partial")
    with partial.open("wb") as out:  # gzip members concatenate into one valid stream
        for key in ("reviews_0", "reviews_1"):
            with truth.files[key].open("rb") as fh:
                shutil.copyfileobj(fh, out)
    partial.rename(target)
    shutil.rmtree(folder)
    return target


def meta_corpus(cache: Path) -> Path:
    """A 2018 metadata file with one record per reviewed item (the 5M file's items: the
    larger files repeat it)."""
    target = cache / "meta_reviews.json.gz"
    if target.is_file():
        return target
    from models.data.ingest import review_spec
    from models.data.readers import read_records

    items = read_records(corpus(BASE, cache), review_spec("amazon2018", int(time.time())))
    partial = target.with_suffix(".partial")
    with gzip.open(partial, "wt") as out:
        for item in items.frame["item"].unique().sort():
            out.write(json.dumps({"asin": item, "title": f"Item {item}"}) + "\n")
    partial.rename(target)
    return target


def measure_ingest(path: Path, meta: Path) -> dict:
    """Run in a child process: the reader alone, then the whole ingest of the file."""
    from models.data.ingest import DomainFiles, ingest_pair, partition_count, review_spec
    from models.data.spill import spill_records

    files = DomainFiles("A", path, meta, "amazon2018")
    partitions = partition_count([files])
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as work:
        start, cpu = time.perf_counter(), cpu_s()
        spilled = spill_records(path, review_spec("amazon2018", int(time.time())),
                                Path(work) / "spill", partitions, "user")
        seconds, reader_cpu = time.perf_counter() - start, cpu_s() - cpu
        reader_rss = rss_mb()
        shutil.rmtree(Path(work) / "spill")
        start = time.perf_counter()
        result = ingest_pair([files], workdir=Path(work), partitions=partitions)
        ingest_s = time.perf_counter() - start
        interactions = result.per_domain["A"]["interactions"]
    return {"seconds": seconds, "cpu_s": reader_cpu, "rows": spilled.rows,
            "lines": spilled.lines, "quarantined": spilled.quarantine.height,
            "fallback_blocks": spilled.blocks_fallback, "partitions": partitions,
            "reader_peak_rss_mb": reader_rss, "ingest_s": ingest_s,
            "interactions": interactions, "peak_rss_mb": rss_mb()}


def gzip_floor(path: Path) -> tuple[float, float]:
    start, cpu = time.perf_counter(), cpu_s(resource.RUSAGE_CHILDREN)
    subprocess.run(f"gzip -dc '{path}' > /dev/null", shell=True, check=True)
    return time.perf_counter() - start, cpu_s(resource.RUSAGE_CHILDREN) - cpu


def json_loads_loop(path: Path) -> tuple[float, float, int]:
    start, cpu = time.perf_counter(), cpu_s()
    rows = 0
    with gzip.open(path, "rb") as fh:
        for line in fh:
            record = json.loads(line)
            rows += record["reviewerID"] is not None
    return time.perf_counter() - start, cpu_s() - cpu, rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reviews", type=int, default=5_000_000)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/lgcd-bench"))
    parser.add_argument("--measure", type=Path, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure_ingest(*args.measure)))
        return
    args.cache.mkdir(parents=True, exist_ok=True)
    path = corpus(args.reviews, args.cache)
    meta = meta_corpus(args.cache)
    floor, floor_cpu = gzip_floor(path)
    child = subprocess.run([sys.executable, "-m", "bench.bench_ingest", "--measure", str(path),
                            str(meta)], check=True, capture_output=True, text=True)
    reader = json.loads(child.stdout.strip().splitlines()[-1])
    loads_s, loads_cpu, loads_rows = json_loads_loop(path)
    assert loads_rows == reader["lines"], (loads_rows, reader)
    report("ingest_reader_vs_gzip_dc", reader["seconds"], floor, "s",
           reviews=reader["rows"], file_mb=round(path.stat().st_size / 1e6, 1),
           times_floor=round(reader["seconds"] / floor, 3), target_times_floor=1.3,
           cpu_s=round(reader["cpu_s"], 3), floor_cpu_s=round(floor_cpu, 3),
           json_loads_s=round(loads_s, 3), json_loads_cpu_s=round(loads_cpu, 3),
           speedup_vs_json_loads=round(loads_s / reader["seconds"], 2),
           whole_ingest_s=round(reader["ingest_s"], 3),
           whole_ingest_times_floor=round(reader["ingest_s"] / floor, 3),
           interactions=reader["interactions"], partitions=reader["partitions"],
           reader_peak_rss_mb=round(reader["reader_peak_rss_mb"], 1),
           peak_rss_mb=round(reader["peak_rss_mb"], 1), fallback_blocks=reader["fallback_blocks"],
           target_peak_rss_mb=1000, cpu=cpu_model(), load_avg_1m=round(os.getloadavg()[0], 2))


if __name__ == "__main__":
    main()
