"""Compute device from a config string, so no model code hard-codes ``"cuda"`` or ``"cpu"``."""

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
