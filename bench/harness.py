"""Tiny common harness: every benchmark prints one JSON line with figure, baseline and ratio.

Both numbers are measured in the same run on the same input, because absolute
seconds on these shared machines mean little; the ratio is what we track.
"""

import json
import time
from collections.abc import Callable
from typing import Any


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Best wall time over ``repeat`` calls, and the last result."""
    best = float("inf")
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def report(name: str, figure: float, baseline: float, unit: str, higher_is_better: bool = False,
           **extra: Any) -> dict:
    """Print and return ``{"benchmark", "figure", "baseline", "ratio", "unit", ...}``.

    ``ratio`` is always "how many times better than the baseline" (>1 is better),
    so the README can list every benchmark with one rule.
    """
    if higher_is_better:
        ratio = figure / baseline if baseline else float("inf")
    else:
        ratio = baseline / figure if figure else float("inf")
    line = {"benchmark": name, "figure": round(figure, 6), "baseline": round(baseline, 6),
            "unit": unit, "ratio": round(ratio, 3), "higher_is_better": higher_is_better, **extra}
    print(json.dumps(line), flush=True)
    return line


def cpu_model() -> str:
    """``lscpu``'s model name, printed beside figures (machines of one kind differ)."""
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def matmul_peak_gflops(dtype: str = "fp32", threads: int | None = None, size: int = 2048,
                       seconds: float = 1.0) -> float:
    """The machine's limit for dense math: best GFLOP/s of a ``size``² torch matmul.

    Measured in the calling run, so a benchmark prints its figure beside the peak of
    the same moment (an idle machine and a loaded one differ 5 to 10 times).
    """
    import torch

    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        kind = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
        a, b = torch.randn(size, size, dtype=kind), torch.randn(size, size, dtype=kind)
        a @ b  # warm-up
        best, deadline = float("inf"), time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
        return 2 * size**3 / best / 1e9
    finally:
        torch.set_num_threads(previous)


def memory_bandwidth_gbs(megabytes: int = 256, repeat: int = 5) -> float:
    """The machine's limit for streaming work: best GB/s of a numpy copy (read + write counted)."""
    import numpy as np

    source = np.ones(megabytes << 17)  # float64: megabytes MB
    target = np.empty_like(source)
    best = min(timed(lambda: np.copyto(target, source), repeat)[0], float("inf"))
    return 2 * source.nbytes / best / 1e9


def reset_peak_rss() -> None:
    """Restart the kernel's peak-RSS counter (VmHWM), so a later ``peak_rss_mb`` is one step's."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def rss_mb(field: str = "VmHWM") -> float:
    """This process's peak (``VmHWM``) or current (``VmRSS``) resident set, in MB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def latest_stored(root, name: str):
    """The latest stored version of asset ``name`` under a storage root, loaded and verified.

    For the scripts that measure on a dataset's stored artifacts (one pipeline run first).
    """
    from pipeline import storage

    version = storage.latest_version(root, [name])
    if version is None:
        raise SystemExit(f"no stored version of {name} under {root}; materialize the dataset "
                         "first (python -m app.cli demo)")
    return storage.read(storage.asset_dir(root, [name]) / version)
