"""A trained LGCD ranks held-out users from its checkpoint parts, reproducibly."""

from dataclasses import dataclass

import numpy as np
import polars as pl
import pytest
import torch

from models.encoders.sequence import DomainEncoder, EncoderConfig, encoders_from_checkpoints
from models.evaluation.candidates import sample_all_seeds
from models.evaluation.lgcd import LGCDScorer, rank_lgcd
from models.evaluation.ranking import RANK_SCHEMA, eval_users, rank_users
from models.lgcd.checkpoint import lgcd_from_checkpoint
from models.lgcd.config import LGCDConfig
from models.lgcd.model import LGCD

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_ITEMS = {"A": 12, "B": 15}
PROTOCOLS = ("all", "target")


@dataclass
class Parts:
    """A plain stand-in for ``pipeline.storage.Checkpoint``: models/ takes any such object."""

    state_dict: dict[str, torch.Tensor]
    config: dict


def encoder_parts() -> dict[str, Parts]:
    torch.manual_seed(0)
    return {d: Parts(*DomainEncoder(EncoderConfig(n_items=n, text_dim=6, d=16, n_heads=2,
                                                  n_layers=1, max_len=8), torch.randn(n, 6))
                     .to_checkpoint()) for d, n in N_ITEMS.items()}


def lgcd_parts(encoders: dict[str, Parts], **overrides) -> Parts:
    """An untrained LGCD's own weights and config, as ``checkpoint_parts`` publishes them."""
    cfg = LGCDConfig(d=16, max_len=8, T=6, **overrides)
    torch.manual_seed(1)
    model = LGCD(cfg, encoders_from_checkpoints(encoders))
    own = {k: v for k, v in model.state_dict().items()
           if cfg.finetune_encoders or not k.startswith("encoders.")}
    return Parts(own, cfg.to_dict())


def held_out() -> pl.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for u in range(16):
        src, tgt = ("A", "B") if u % 2 else ("B", "A")
        rows.append({"user": f"e{u:02d}", "split": "test" if u % 4 < 2 else "valid",
                     "kind": "overlap", "items": [int(i) for i in rng.integers(0, 12, size=3)],
                     "domains": [src] * 3, "source_domain": src, "target_domain": tgt,
                     "target_item": int(rng.integers(0, 12))})
    return pl.DataFrame(rows)


def test_rank_lgcd_is_the_checkpoints_model_ranked_by_the_shared_ranking():
    encoders = encoder_parts()
    ckpt = lgcd_parts(encoders)
    sequences = held_out()
    users = eval_users(sequences)
    candidates = sample_all_seeds(sequences, N_ITEMS, 8, PROTOCOLS, (0, 1))
    ranks = rank_lgcd(ckpt, encoders, users, candidates, 1, "lgcd", 4, PROTOCOLS)
    assert ranks.schema == pl.Schema(RANK_SCHEMA) and ranks.height == 2 * len(users)
    net = lgcd_from_checkpoint(ckpt.state_dict, ckpt.config, encoders_from_checkpoints(encoders))
    expected = rank_users(LGCDScorer(net, 1), users, candidates, 1, "lgcd", 4, PROTOCOLS)
    assert ranks.equals(expected)
    assert ranks.equals(rank_lgcd(ckpt, encoders, users, candidates, 1, "lgcd", 4, PROTOCOLS))


def test_fine_tuned_encoders_never_leak_into_the_next_model():
    """A checkpoint that carries fine-tuned encoder weights loads them into fresh encoders,
    so the frozen model ranked after it sees the pre-trained ones."""
    encoders = encoder_parts()
    frozen = lgcd_parts(encoders)
    tuned = lgcd_parts(encoders, finetune_encoders=True)
    tuned.state_dict = {k: v + 0.5 if k.startswith("encoders.") and v.is_floating_point() else v
                        for k, v in tuned.state_dict.items()}
    sequences = held_out()
    users = eval_users(sequences)
    candidates = sample_all_seeds(sequences, N_ITEMS, 8, PROTOCOLS, (0,))
    alone = rank_lgcd(frozen, encoders, users, candidates, 0, "lgcd", 4, PROTOCOLS)
    assert not rank_lgcd(tuned, encoders, users, candidates, 0, "lgcd", 4, PROTOCOLS).equals(alone)
    assert rank_lgcd(frozen, encoders, users, candidates, 0, "lgcd", 4, PROTOCOLS).equals(alone)
