"""Streaming review reader vs the decompression floor (`gzip -dc`) and a json.loads loop.

    .venv/bin/python -m bench.bench_ingest [--reviews 5000000] [--cache /tmp/lgcd-bench]
    .venv/bin/python -m bench.bench_ingest --reviews 20000000   # four copies of the 5M file

The input is the synthetic 2018-format corpus (models/synthetic.py) with both
domains' review files joined into one multi-member gzip file, generated once into
``--cache`` and reused. All three timings run on that file in the same run; the
reader runs in a fresh process so that its peak resident memory is its own.
Target: reader <= 1.3 x `gzip -dc` (harness ratio >= 0.77) and peak RSS <= 1 GB at
any size.
"""

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import cpu_model, report


def cpu_s(who: int = resource.RUSAGE_SELF) -> float:
    """User + system CPU seconds: unlike wall time, barely moved by other jobs on the box."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


BASE = 5_000_000  # larger files are copies of this one: generating 20M at once needs ~20 GB


def corpus(n_reviews: int, cache: Path) -> Path:
    """``reviews_<n>.json.gz`` in the cache, generating it on first use.

    Above ``BASE`` reviews (a multiple of it), the file is the base file repeated: gzip
    members concatenate into one valid stream, and the reader's speed and memory do
    not depend on whether reviews repeat.
    """
    target = cache / f"reviews_{n_reviews}.json.gz"
    if target.is_file():
        return target
    if n_reviews > BASE:
        if n_reviews % BASE:
            raise SystemExit(f"--reviews above {BASE} must be a multiple of it")
        base = corpus(BASE, cache)
        partial = target.with_suffix(".partial")
        with partial.open("wb") as out:
            for _ in range(n_reviews // BASE):
                with base.open("rb") as fh:
                    shutil.copyfileobj(fh, out)
        partial.rename(target)
        return target
    from models.synthetic import SyntheticConfig, generate

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


def measure_reader(path: Path) -> dict:
    """Run in a child process: read the file with the pipeline's reader."""
    from models.ingest import review_spec
    from models.readers import read_records

    start, cpu = time.perf_counter(), cpu_s()
    result = read_records(path, review_spec("amazon2018", int(time.time())))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "cpu_s": cpu_s() - cpu, "rows": result.frame.height,
            "lines": result.lines,
            "quarantined": result.quarantine.height, "fallback_blocks": result.blocks_fallback,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


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
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure_reader(args.measure)))
        return
    args.cache.mkdir(parents=True, exist_ok=True)
    path = corpus(args.reviews, args.cache)
    floor, floor_cpu = gzip_floor(path)
    child = subprocess.run([sys.executable, "-m", "bench.bench_ingest", "--measure", str(path)],
                           check=True, capture_output=True, text=True)
    reader = json.loads(child.stdout.strip().splitlines()[-1])
    loads_s, loads_cpu, loads_rows = json_loads_loop(path)
    assert loads_rows == reader["lines"], (loads_rows, reader)
    report("ingest_reader_vs_gzip_dc", reader["seconds"], floor, "s",
           reviews=reader["rows"], file_mb=round(path.stat().st_size / 1e6, 1),
           times_floor=round(reader["seconds"] / floor, 3), target_times_floor=1.3,
           cpu_s=round(reader["cpu_s"], 3), floor_cpu_s=round(floor_cpu, 3),
           json_loads_s=round(loads_s, 3), json_loads_cpu_s=round(loads_cpu, 3),
           speedup_vs_json_loads=round(loads_s / reader["seconds"], 2),
           peak_rss_mb=round(reader["peak_rss_mb"], 1), fallback_blocks=reader["fallback_blocks"],
           target_peak_rss_mb=1000, cpu=cpu_model(), load_avg_1m=round(os.getloadavg()[0], 2))


if __name__ == "__main__":
    main()
