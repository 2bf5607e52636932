"""Sequence encoder pre-training speed: training steps per second.

Figure: our ``DomainEncoder`` (ID + text encoders + fusion, eqs. 1-3) through
``models.encoders.pretraining.train_step``. Baseline, measured in the same run on the same
batches: an ID-only SASRec of the same size (one causal encoder over item IDs,
softmax over the ID embedding table), i.e. what the text branch and the fusion
cost on top of a plain single-modality sequential recommender.

Sizes default to the Food-Kitchen release's Food domain (8,661 items, sequences
of about 7 items, 384-d MiniLM text vectors, d = 64, batch 128).

    .venv/bin/python -m bench.bench_encoder_training [--items 8661 --steps 20]
"""

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from bench.harness import report
from models.encoders.pretraining import EncoderTrainConfig, SequenceBatches, train_step
from models.encoders.sequence import CausalEncoder, DomainEncoder, EncoderConfig


class IdOnlySASRec(nn.Module):
    """Baseline: the ID half of DomainEncoder alone, scored against its own embeddings."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.item_emb = nn.Embedding(cfg.n_items, cfg.d)
        self.encoder = CausalEncoder(cfg)

    def forward(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.item_emb(items.masked_fill(~mask, 0)), mask)  # (B, L, d)


def baseline_step(model: IdOnlySASRec, optimizer: torch.optim.Optimizer, batch) -> float:
    inputs, targets, mask = batch
    model.train()
    optimizer.zero_grad(set_to_none=True)
    logits = model(inputs, mask)[mask] @ model.item_emb.weight.T  # (P, N)
    loss = F.cross_entropy(logits, targets[mask])
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def synthetic_sequences(n_seq: int, n_items: int, seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(5, 11, (n_seq,), generator=g)  # mean ~7 like the release
    return [torch.randint(0, n_items, (int(n),), generator=g).tolist() for n in lengths]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=8661)
    parser.add_argument("--text-dim", type=int, default=384)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    train_cfg = EncoderTrainConfig()
    cfg = train_cfg.model_config(args.items, args.text_dim)
    sequences = synthetic_sequences(train_cfg.batch_size * (args.steps + 3), args.items)
    batches = SequenceBatches(sequences, train_cfg.max_len)
    data = list(batches.epoch(0, train_cfg.batch_size, 0, torch.device("cpu")))
    ours = DomainEncoder(cfg, torch.randn(args.items, args.text_dim))
    base = IdOnlySASRec(cfg)
    runs = {"ours": (ours, train_step, torch.optim.Adam(ours.parameters(), lr=train_cfg.lr)),
            "base": (base, baseline_step, torch.optim.Adam(base.parameters(), lr=train_cfg.lr))}
    seconds = {"ours": 0.0, "base": 0.0}
    for model, step, opt in runs.values():  # warm-up
        for batch in data[:3]:
            step(model, opt, batch)
    for batch in data[3:]:  # interleaved per step, so machine load hits both alike
        for name, (model, step, opt) in runs.items():
            start = time.perf_counter()
            step(model, opt, batch)
            seconds[name] += time.perf_counter() - start
    n = len(data) - 3
    report("encoder_train_steps", n / seconds["ours"], n / seconds["base"], "steps/s",
           higher_is_better=True, items=args.items, batch=train_cfg.batch_size, d=cfg.d,
           threads=torch.get_num_threads(),
           baseline_desc="ID-only SASRec, same blocks/size/batches, softmax over ID embeddings")


if __name__ == "__main__":
    main()
