"""LGCD model: training throughput and the batched reverse process.

1. ``lgcd_train_steps_per_s``: full LGCD (T = 100, lambda 0.5 / 0.3, d = 64, real
   ``DomainEncoder``s, 128 pseudo + 64 overlap users per step, data collation
   included) against the w/o-Diffusion ablation on the same batches, same run.
   The ratio (< 1) is the cost of the diffusion path; it is not a speed-up.
2. ``lgcd_reverse_batched``: the reverse process batched over all users against a
   Python loop over users (same noise, outputs asserted identical). Target >= 20x.

    .venv/bin/python -m bench.bench_lgcd [--steps 4] [--users 256] [--device auto]
"""

import argparse
import time

import numpy as np
import torch

from bench.harness import report, timed
from models.device import resolve_device
from models.encoders.sequence import DomainEncoder, EncoderConfig
from models.lgcd.config import LGCDConfig
from models.lgcd.data import SequenceRow, TrainBatches
from models.lgcd.diffusion import ConditionalDiffusion
from models.lgcd.model import LGCD


def random_rows(n_pseudo: int, n_overlap: int, n_items: int, n_k: int = 10,
                seed: int = 0) -> list[SequenceRow]:
    """Pseudo users (source history + n_k pseudo items) and real overlap users, both directions."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_pseudo + n_overlap):
        src, tgt = ("A", "B") if u % 2 else ("B", "A")
        n_src = int(rng.integers(5, 30))
        items = rng.integers(n_items, size=n_src).tolist()
        domains, pseudo = [src] * n_src, [False] * n_src
        n_tgt = n_k if u < n_pseudo else int(rng.integers(2, 15))
        for _ in range(n_tgt):
            pos = int(rng.integers(len(items) + 1))
            items.insert(pos, int(rng.integers(n_items)))
            domains.insert(pos, tgt)
            pseudo.insert(pos, u < n_pseudo)
        kind = "pseudo" if u < n_pseudo else "overlap"
        rows.append(SequenceRow(f"u{u}", tuple(items), tuple(domains), tuple(pseudo), src, tgt,
                                int(rng.integers(n_items)), kind))
    return rows


def real_encoders(n_items: int, text_dim: int = 384, d: int = 64,
                  seed: int = 0) -> dict[str, DomainEncoder]:
    gen = torch.Generator().manual_seed(seed)
    cfg = EncoderConfig(n_items=n_items, text_dim=text_dim, d=d)
    return {dom: DomainEncoder(cfg, torch.randn(n_items, text_dim, generator=gen))
            for dom in ("A", "B")}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_steps_per_s(cfg: LGCDConfig, rows: list[SequenceRow], encoders: dict,
                      device: torch.device, steps: int) -> float:
    """Steps per second of the plain training loop (collation, forward, backward, Adam)."""
    torch.manual_seed(0)
    model = LGCD(cfg, encoders).to(device).train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    batches = TrainBatches(rows, cfg)

    def run(n: int) -> None:
        it = batches.epoch(0)
        for _ in range(n):
            _, losses = model(next(it).to(device))
            opt.zero_grad(set_to_none=True)
            losses["total"].backward()
            opt.step()
        sync(device)

    run(1)  # warm-up
    start = time.perf_counter()
    run(steps)
    return steps / (time.perf_counter() - start)


def reverse_batched_vs_loop(n_users: int, device: torch.device, d: int = 64, T: int = 100,
                            t_start: int = 50, loop: bool = True) -> tuple[float, float, float]:
    """(batched s, per-user loop s, max abs difference) on identical inputs and noise.

    With ``loop=False`` only the batched pass is timed (loop time and difference are nan).
    """
    torch.manual_seed(0)
    diff = ConditionalDiffusion(d, 4, T, 0.001, 0.1).to(device).eval()
    gen = torch.Generator().manual_seed(1)
    h_init, noise = (torch.randn(n_users, d, generator=gen).to(device) for _ in range(2))
    z = torch.randn(n_users, 3, d, generator=gen).to(device)

    def batched() -> torch.Tensor:
        with torch.no_grad():
            out = diff.reverse(h_init, z, t_start, noise=noise)
        sync(device)
        return out

    def per_user() -> torch.Tensor:
        with torch.no_grad():
            out = torch.cat([diff.reverse(h_init[i:i + 1], z[i:i + 1], t_start,
                                          noise=noise[i:i + 1]) for i in range(n_users)])
        sync(device)
        return out

    batched()
    t_batched, out_b = timed(batched, repeat=3)
    if not loop:
        return t_batched, float("nan"), float("nan")
    t_loop, out_l = timed(per_user, repeat=1)
    return t_batched, t_loop, float((out_b - out_l).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--users", type=int, default=256)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)

    rows = random_rows(n_pseudo=4 * 128, n_overlap=200, n_items=args.items)
    encoders = real_encoders(args.items)
    full = LGCDConfig()
    ablated = LGCDConfig.variant("wo_diffusion")
    fig = train_steps_per_s(full, rows, encoders, device, args.steps)
    base = train_steps_per_s(ablated, rows, encoders, device, args.steps)
    report("lgcd_train_steps_per_s", fig, base, "steps/s", higher_is_better=True,
           device=str(device), steps=args.steps, batch="128 pseudo + 64 overlap", T=full.T,
           t_start={"A": full.t_start("A"), "B": full.t_start("B")},
           baseline_desc="w/o Diffusion ablation (h_final = h_cond), same batches and encoders")

    t_b, t_l, max_diff = reverse_batched_vs_loop(args.users, device)
    assert max_diff < 1e-4, f"batched and per-user reverse differ by {max_diff}"
    report("lgcd_reverse_batched", t_b, t_l, "s", device=str(device), users=args.users,
           T=100, t_start=50, max_abs_diff=max_diff, meets_20x_target=t_l / t_b >= 20,
           baseline_desc="Python loop over users, same model, inputs and noise")


if __name__ == "__main__":
    main()
