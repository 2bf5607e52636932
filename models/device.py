"""Compute device from a config string, so no model code hard-codes ``"cuda"`` or ``"cpu"``."""

import contextlib
import os
from collections.abc import Iterator

import torch


def resolve_device(name: str) -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU; anything else must be usable here.

    A config that asks for CUDA on a machine without it fails at once with the
    device named, instead of deep inside the first forward pass.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(
            f"device={name!r} is not a torch device (use auto, cpu, cuda, cuda:N)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} was requested but CUDA is not available on this machine")
    return device


def cpu_has_native_bf16() -> bool:
    """AVX512_BF16 or AMX-BF16 in the CPU flags: only there is bf16 faster than fp32.

    Machines of one kind differ (one had AVX512_BF16, another AVX2 only, where bf16
    ran slower than fp32), so this is read at run time, never assumed.
    """
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        return False
    return False


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` ("auto" | "fp32" | "bf16") on ``device``; None = fp32.

    "auto" takes bf16 on CUDA devices that support it and on CPUs with native bf16.
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"precision={precision!r}; allowed auto, fp32, bf16")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_has_native_bf16() else None


def auto_threads() -> int:
    """Half the cores, at least one: the model's small matmuls lose to thread contention."""
    return max(1, (os.cpu_count() or 2) // 2)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[int]:
    """Run with ``n`` torch CPU threads (0 = ``auto_threads()``), then restore the old count."""
    before = torch.get_num_threads()
    n = n or auto_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)
