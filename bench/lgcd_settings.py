"""Which LGCD training settings learn: validation NDCG@10 of each against the paper's reading.

Every choice of the training path (what an epoch is, where the reverse process starts,
what the condition reads, the loss balance, the item bias, the pseudo stream's weight)
is an ``LGCDConfig`` field whose default must be justified by a validation measurement.
This script makes that measurement on the stored artifacts of a dataset: the latest
``sequences``, pseudo sequences and both encoders under the dataset's storage root, so
it needs one pipeline run first. Each setting is a named set of field overrides on top
of the dataset's ``lgcd:`` section; the figure is its best validation NDCG@10, the
baseline the ``paper`` setting's, trained in the same run on the same rows.

    LGCD_DATASET=food_kitchen_llmcdsr .venv/bin/python -m bench.lgcd_settings \\
        --settings paper,default,x0_hat [--epochs 20] [--patience 4] [--threads 2]

Run it on an idle machine: each setting is a whole LGCD training (minutes on Food-Kitchen).
"""

import argparse
import dataclasses
import os
import time
from pathlib import Path

import torch

from bench.harness import latest_stored, report
from models.device import torch_threads
from models.encoders.sequence import DomainEncoder
from models.lgcd.fitting import fit
from models.lgcd.rows import training_rows, validation_rows
from pipeline import settings
from pipeline.config import load_dataset_config

# The paper's reading as this project first implemented it: an epoch is one pass over the
# pseudo users, both streams weigh the same, training rows start the reverse process from
# x_hat_0 of the true h_tgt and overlap rows read their target IDs, squared norms summed.
PAPER = {"epoch_unit": "pseudo", "pseudo_weight": 0.5, "train_start": "x0_hat",
         "cross_id": True, "item_bias": False, "sq_reduce": "sum", "finetune_encoders": False}
SETTINGS: dict[str, dict] = {
    "paper": PAPER,
    "default": {},
    # one choice of the default path at a time, set back to the paper's reading
    "x0_hat": {"train_start": "x0_hat"},
    "cross_id": {"cross_id": True},
    "item_bias": {"item_bias": True},
    "pseudo_half": {"pseudo_weight": 0.5},
    "pseudo_epochs": {"epoch_unit": "pseudo"},
    "sq_sum": {"sq_reduce": "sum"},
    # loss balance and trainable parts
    "aux_0.1": {"w_diff": 0.1, "w_guess": 0.1, "w_align": 0.1},
    "finetune": {"finetune_encoders": True},
    "finetune_aux_0.1": {"finetune_encoders": True, "w_diff": 0.1, "w_guess": 0.1,
                         "w_align": 0.1},
    "lr_3e-4": {"lr": 3e-4},
    "finetune_lr_1e-4": {"finetune_encoders": True, "lr": 1e-4},
    "bias_x0_hat": {"item_bias": True, "train_start": "x0_hat"},
    "bias_x0_hat_lr_3e-4": {"item_bias": True, "train_start": "x0_hat", "lr": 3e-4},
    "bias_finetune_lr_1e-4": {"item_bias": True, "finetune_encoders": True, "lr": 1e-4},
    # every cross-domain target of the real overlapping users, not their last item only
    "every": {"overlap_targets": "every"},
    "every_bias": {"overlap_targets": "every", "item_bias": True},
    "every_x0_hat": {"overlap_targets": "every", "train_start": "x0_hat"},
    "every_finetune_lr_3e-4": {"overlap_targets": "every", "finetune_encoders": True,
                               "lr": 3e-4},
    "residual": {"item_residual": True},
    "residual_bias": {"item_residual": True, "item_bias": True},
    "residual_every": {"item_residual": True, "overlap_targets": "every"},
    # learned source-item embeddings beside the frozen source encoder's h_ID
    "adapter": {"source_adapter": True},
    "adapter_every": {"source_adapter": True, "overlap_targets": "every"},
    "adapter_every_residual": {"source_adapter": True, "overlap_targets": "every",
                               "item_residual": True},
    # each direction keeps its own best epoch (the paths share no trainable weight)
    "per_direction": {"early_stopping": "per_direction"},
    "per_direction_adapter": {"early_stopping": "per_direction", "source_adapter": True},
    "per_direction_adapter_every": {"early_stopping": "per_direction", "source_adapter": True,
                                    "overlap_targets": "every"},
    "per_direction_adapter_every_residual": {"early_stopping": "per_direction",
                                             "source_adapter": True, "overlap_targets": "every",
                                             "item_residual": True},
    "per_direction_every_residual": {"early_stopping": "per_direction",
                                     "overlap_targets": "every", "item_residual": True},
    # per target domain: every moment and a residual table for Food targets (A) only
    "food_every_residual": {"overlap_targets": {"A": "every", "B": "last"},
                            "item_residual": {"A": True, "B": False}},
    "per_direction_food_every_residual": {"early_stopping": "per_direction",
                                          "overlap_targets": {"A": "every", "B": "last"},
                                          "item_residual": {"A": True, "B": False}},
    "per_direction_adapter_food_every_residual": {
        "early_stopping": "per_direction", "source_adapter": True,
        "overlap_targets": {"A": "every", "B": "last"}, "item_residual": {"A": True, "B": False}},
    "per_direction_finetune_condition": {"early_stopping": "per_direction",
                                         "finetune_condition": True},
    "per_direction_finetune_condition_lr_3e-4": {"early_stopping": "per_direction",
                                                 "finetune_condition": True, "lr": 3e-4},
    "wo_diffusion": {"use_diffusion": False},
    "wo_diffusion_finetune": {"use_diffusion": False, "finetune_encoders": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="paper,default",
                        help=f"comma-separated names of {sorted(SETTINGS)}")
    parser.add_argument("--epochs", type=int, default=None, help="override lgcd.epochs")
    parser.add_argument("--patience", type=int, default=None, help="override lgcd.patience")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=None, help="override lgcd.seed")
    parser.add_argument("--valid-users", type=int, default=None,
                        help="override lgcd.max_valid_users (0: the whole valid split)")
    parser.add_argument("--pseudo", default="pseudo_sequences", help="pseudo-sequence asset")
    args = parser.parse_args()
    names = args.settings.split(",")
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        raise SystemExit(f"unknown settings {unknown}; allowed {sorted(SETTINGS)}")
    cfg = load_dataset_config(settings.dataset_config_path())
    root = Path(settings.storage_root_default())
    sequences, pseudo = latest_stored(root, "sequences"), latest_stored(root, args.pseudo)
    ckpts = {d: latest_stored(root, f"sequence_encoder_{d.lower()}") for d in ("A", "B")}
    stage = cfg.lgcd
    budget = {k: v for k, v in (("epochs", args.epochs), ("patience", args.patience),
                                ("seed", args.seed)) if v is not None}
    base = dataclasses.replace(stage.model, **budget)
    n_valid = stage.max_valid_users if args.valid_users is None else (args.valid_users or None)
    valid, _ = validation_rows(sequences, n_valid, base.seed)
    results: dict[str, tuple[float, float, float, int, dict]] = {}
    with torch_threads(args.threads) as threads:
        for name in names:
            model_cfg = dataclasses.replace(base, **SETTINGS[name])
            encoders = {d: DomainEncoder.from_checkpoint(c.state_dict, c.config)
                        for d, c in ckpts.items()}
            train, _ = training_rows(sequences, pseudo, model_cfg.n_k, 1.0, model_cfg.seed)
            began = time.perf_counter()
            _, res = fit(model_cfg, encoders, train, valid, torch.device("cpu"),
                         valid_negatives=stage.valid_negatives,
                         on_epoch=lambda h, n=name: print(
                             f"  {n} epoch {h['epoch']}: loss {h['loss_total']:.4f} "
                             f"HR@10 {h['hr@10']:.4f} NDCG@10 {h['ndcg@10']:.4f} "
                             + " ".join(f"{k} {v:.4g}" for k, v in h.items()
                                        if k.startswith(("gradnorm_", "ndcg@10/"))),
                             flush=True))
            best = res.train.selected
            results[name] = (best["ndcg@10"], best["hr@10"], time.perf_counter() - began,
                             res.train.best_epochs or res.train.best_epoch,
                             {k: round(v, 4) for k, v in best.items() if k.startswith("ndcg@10/")})
    baseline = results.get("paper", next(iter(results.values())))
    for name, (ndcg, hr, seconds, epoch, per_direction) in results.items():
        report(f"lgcd_setting_{name}", ndcg, baseline[0], "val NDCG@10", higher_is_better=True,
               hr10=round(hr, 4), baseline_hr10=round(baseline[1], 4), best_epoch=epoch,
               **per_direction,
               seconds=round(seconds, 1), threads=threads,
               load_average=round(os.getloadavg()[0], 2), overrides=SETTINGS[name])


if __name__ == "__main__":
    main()
