"""Run the speed benchmarks 3 times each and print the README's performance table (medians).

    .venv/bin/python -m bench.perf_table [--runs 3] [--llm-model DIR] [--only kcore,ingest_5m]

Each benchmark runs in its own process, one after another, so none measures beside
another. The table gives the median of the runs for the figure, its baseline and the
ratio, the machine limit printed by the same runs, and the load average each run
saw; the header gives the date and the CPU model (``lscpu``'s model name). Run it on
an idle machine: figures taken beside the test suite were 5 to 10 times lower.
"""

import argparse
import datetime
import json
import statistics
import subprocess
import sys

from bench.harness import cpu_model

# name -> (command arguments, benchmark line to keep, how the limit column reads it)
BENCHES = {
    "ingest_5m": (["bench.bench_ingest", "--reviews", "5000000"], "ingest_reader_vs_gzip_dc"),
    "ingest_20m": (["bench.bench_ingest", "--reviews", "20000000"], "ingest_reader_vs_gzip_dc"),
    "kcore": (["bench.bench_kcore"], "kcore_vs_pandas"),
    "embeddings": (["bench.bench_embeddings"], "embedding_throughput"),
    "llm": (["bench.bench_llm"], "llm_generation_tokens_per_s"),
}
EXTRA = {  # what each row prints beside the ratio: (label, field)
    "ingest_5m": [("x gzip -dc", "times_floor"), ("reader peak RSS MB", "reader_peak_rss_mb"),
                  ("whole ingest s", "whole_ingest_s"),
                  ("whole x gzip -dc", "whole_ingest_times_floor"), ("peak RSS MB", "peak_rss_mb")],
    "ingest_20m": [("x gzip -dc", "times_floor"), ("reader peak RSS MB", "reader_peak_rss_mb"),
                   ("whole ingest s", "whole_ingest_s"),
                   ("whole x gzip -dc", "whole_ingest_times_floor"), ("peak RSS MB", "peak_rss_mb")],
    "kcore": [("peak RSS MB", "peak_rss_mb"), ("memory GB/s", "memory_bandwidth_gbs")],
    "embeddings": [("min cosine", "min_cosine_to_fp32"), ("GFLOP/s", "achieved_gflops"),
                   ("matmul peak", "matmul_peak_gflops"), ("of peak", "fraction_of_peak")],
    "llm": [("processed tok/s", "processed_tokens_per_s"), ("GFLOP/s", "achieved_gflops"),
            ("matmul peak", "matmul_peak_gflops"), ("of peak", "fraction_of_peak")],
}


def run(args: list[str]) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, check=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def median(rows: list[dict], field: str):
    values = [r[field] for r in rows if isinstance(r.get(field), int | float)]
    return round(statistics.median(values), 3) if values else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--llm-model", help="an llm_model folder (default: the storage's latest)")
    parser.add_argument("--only", help="comma-separated subset of " + ",".join(BENCHES))
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHES)
    results = {}
    for name in names:
        command, line = BENCHES[name]
        if name == "llm" and args.llm_model:
            command = [*command, "--model", args.llm_model]
        rows = []
        for _ in range(args.runs):
            rows += [r for r in run(command) if r["benchmark"] == line]
            print(json.dumps({"bench": name, **rows[-1]}), file=sys.stderr, flush=True)
        results[name] = rows
    print(f"Measured {datetime.date.today()} on {cpu_model()}, {args.runs} runs each, medians "
          "(figure and baseline from the same run):\n")
    print("| benchmark | figure | baseline | ratio | target | details | load avg (1 min) |")
    print("|---|---:|---:|---:|---:|---|---|")
    for name, rows in results.items():
        unit = rows[0]["unit"]
        target = rows[0].get("target_ratio") or rows[0].get("target_times_floor")
        details = ", ".join(f"{label} {median(rows, field)}" for label, field in EXTRA[name])
        loads = " / ".join(str(r.get("load_avg_1m")) for r in rows)
        print(f"| {name} | {median(rows, 'figure')} {unit} | {median(rows, 'baseline')} {unit} | "
              f"{median(rows, 'ratio')} | {target} | {details} | {loads} |")


if __name__ == "__main__":
    main()
