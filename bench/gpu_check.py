"""Times the torch parts of LGCD on CUDA when present (else on CPU), in a few minutes.

Needs only torch and numpy (no Dagster, polars or faiss), so it runs on the bare
GPU machine. Each line compares the device against a baseline from the same run:

* ``gpu_reverse_batched``: batched reverse process vs a per-user loop (same device);
* ``gpu_train_steps_per_s``: full LGCD training step vs the w/o-Diffusion ablation;
* ``gpu_encoder_forward``: ``DomainEncoder`` encode_ids + encode_text on the device vs CPU.

    bash bench/gpu_check.sh            # or: python -m bench.gpu_check --device cpu
"""

import argparse
import platform

import torch

from bench.bench_lgcd import (
    random_rows,
    real_encoders,
    reverse_batched_vs_loop,
    sync,
    train_steps_per_s,
)
from bench.harness import report, timed
from models.device import resolve_device
from models.lgcd.config import LGCDConfig


def encoder_forward_s(encoder, items, mask, text, device: torch.device) -> float:
    encoder = encoder.to(device).eval()
    items, mask, text = items.to(device), mask.to(device), text.to(device)

    def run() -> None:
        with torch.no_grad():
            encoder.fuse(encoder.encode_ids(items, mask), encoder.encode_text(text, mask))
        sync(device)

    run()
    return timed(run, repeat=3)[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--loop-users", type=int, default=64)
    args = parser.parse_args()
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    print(f"# torch {torch.__version__} on {device} ({name})", flush=True)

    t_b, t_l, max_diff = reverse_batched_vs_loop(args.loop_users, device)
    assert max_diff < 1e-4, f"batched and per-user reverse differ by {max_diff}"
    t_big = (reverse_batched_vs_loop(4096, device, loop=False)[0] if device.type == "cuda"
             else None)
    report("gpu_reverse_batched", t_b, t_l, "s", device=str(device), users=args.loop_users,
           max_abs_diff=max_diff, batched_4096_users_s=t_big,
           baseline_desc="per-user loop, same device, same inputs and noise")

    rows = random_rows(n_pseudo=4 * 128, n_overlap=200, n_items=args.items)
    encoders = real_encoders(args.items)
    full, ablated = LGCDConfig(), LGCDConfig.variant("wo_diffusion")
    fig = train_steps_per_s(full, rows, encoders, device, args.steps)
    base = train_steps_per_s(ablated, rows, encoders, device, args.steps)
    report("gpu_train_steps_per_s", fig, base, "steps/s", higher_is_better=True,
           device=str(device), steps=args.steps, items_per_domain=args.items,
           baseline_desc="w/o Diffusion ablation on the same device and batches")

    gen = torch.Generator().manual_seed(0)
    b, L = 1024, 50
    items = torch.randint(args.items, (b, L), generator=gen)
    mask = torch.ones(b, L, dtype=torch.bool)
    text = torch.randn(b, L, 384, generator=gen)
    enc = encoders["A"]
    on_device = encoder_forward_s(enc, items, mask, text, device)
    on_cpu = encoder_forward_s(enc, items, mask, text, torch.device("cpu"))
    report("gpu_encoder_forward", on_device, on_cpu, "s", device=str(device), batch=b, length=L,
           baseline_desc="the same forward on CPU")


if __name__ == "__main__":
    main()
