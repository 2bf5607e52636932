"""A trained LGCD as a checkpoint: what is stored, and how the model is rebuilt from it.

A published checkpoint holds the LGCD-owned weights only (condition fusion, guessers,
denoisers, fusion heads, cross-domain ID maps); frozen pre-trained encoders stay in
their own checkpoints, named by content version in ``extra["encoder_versions"]``.
``lgcd_from_checkpoint`` rebuilds the model from it and the two encoders.
"""

from collections.abc import Mapping
from typing import Any

import torch

from models.lgcd.config import LGCDConfig
from models.lgcd.fitting import LGCDFit
from models.lgcd.model import LGCD
from models.lgcd.variants import VariantSpec

ARCH = "lgcd-v2"


def _own_state(model: LGCD) -> dict[str, torch.Tensor]:
    """Weights LGCD trained: all of them when fine-tuning, else everything but the encoders."""
    keep_encoders = model.cfg.finetune_encoders
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()
            if keep_encoders or not k.startswith("encoders.")}


def checkpoint_parts(model: LGCD, fit_result: LGCDFit, spec: VariantSpec,
                     encoder_versions: Mapping[str, str], rows: Mapping[str, int]
                     ) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """(state_dict, config, extra) for ``pipeline.storage.Checkpoint``; JSON-only config/extra.

    Wall-clock times and ``resumed_from`` stay out, so the content version depends on the
    weights and the training record only: a resumed run publishes the same version as an
    uninterrupted one.
    """
    res = fit_result.train
    history = [{k: v for k, v in h.items() if k != "seconds"} for h in res.history]
    extra = {"arch": ARCH, "variant": spec.name, "preset": spec.preset,
             "overrides": dict(spec.overrides), "overlap_ratio": spec.overlap_ratio,
             "pseudo_source": spec.pseudo_source,
             "encoder_versions": dict(encoder_versions), "history": history,
             "best_epoch": res.best_epoch, "best_epochs": dict(res.best_epochs),
             "best_ndcg10": res.best_metric, "steps": res.steps,
             "stopped_early": res.stopped_early, "rows": dict(rows)}
    return _own_state(model), model.cfg.to_dict(), extra


def lgcd_from_checkpoint(state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any],
                         encoders: Mapping[str, torch.nn.Module]) -> LGCD:
    """Rebuild a trained LGCD (eval mode, CPU) from a checkpoint and its two encoders.

    ``encoders`` are the pre-trained ``DomainEncoder``s the model was trained on; with
    ``finetune_encoders`` the checkpoint overwrites their weights with the fine-tuned ones.
    """
    cfg = LGCDConfig.from_dict(dict(config))
    model = LGCD(cfg, dict(encoders))
    missing, unexpected = model.load_state_dict(dict(state_dict), strict=False)
    if unexpected or any(not k.startswith("encoders.") for k in missing):
        raise ValueError(f"LGCD checkpoint does not fit: missing {sorted(missing)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]}")
    return model.eval()
