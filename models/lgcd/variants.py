"""The ``lgcd:`` section of a dataset YAML: the base model config and the variants to train.

Each variant is a named preset of ``models.lgcd.config.VARIANTS`` with optional
field overrides. Two knobs live on the variant rather than in ``LGCDConfig``
because they select *data*, not weights: ``overlap_ratio`` (the share of real
overlapping training users kept, Figure 6) and ``pseudo_source`` (where the
pseudo-overlap users come from).
"""

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models.config import from_mapping
from models.lgcd.config import VARIANTS, LGCDConfig

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


_MODEL_FIELDS = {f.name for f in dataclasses.fields(LGCDConfig)}
_STAGE_FIELDS = {"variants", "device", "threads", "valid_negatives", "max_valid_users"}


# Where a variant's pseudo-overlap users come from (none: only the real overlapping users
# train). retrieval: the LLM sample's users, grounded on their own source text instead of
# the LLM's guesses; retrieval_all: every single-domain user so (assets/grounding.py).
PSEUDO_SOURCES = ("llm", "retrieval", "retrieval_all", "none")


@dataclass(frozen=True)
class VariantSpec:
    """One model to train: a preset of ``VARIANTS`` plus field overrides, under ``name``."""

    name: str  # "full" -> asset lgcd_model, otherwise lgcd_model_<name>
    preset: str = "full"  # key of models.lgcd.config.VARIANTS
    overrides: dict[str, Any] = field(default_factory=dict)  # LGCDConfig fields
    overlap_ratio: float = 1.0  # share of real overlapping training users kept (Figure 6)
    pseudo_source: str = "llm"  # pseudo users: llm | retrieval | retrieval_all | none

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"variant name {self.name!r} must be snake_case ([a-z][a-z0-9_]*)")
        if self.preset not in VARIANTS:
            raise ValueError(f"variant {self.name!r}: unknown preset {self.preset!r}; "
                             f"allowed {sorted(VARIANTS)}")
        unknown = set(self.overrides) - _MODEL_FIELDS
        if unknown:
            raise ValueError(f"variant {self.name!r}: unknown fields {sorted(unknown)}")
        if "d" in self.overrides:
            raise ValueError(f"variant {self.name!r}: d is set by encoder.d; remove it here")
        if self.pseudo_source not in PSEUDO_SOURCES:
            raise ValueError(f"variant {self.name!r}: pseudo_source={self.pseudo_source!r}; "
                             f"allowed {list(PSEUDO_SOURCES)}")
        if not 0.0 < self.overlap_ratio <= 1.0:
            raise ValueError(f"variant {self.name!r}: overlap_ratio={self.overlap_ratio}; "
                             "allowed (0, 1]")

    @classmethod
    def parse(cls, entry: Any) -> "VariantSpec":
        """A preset name (``wo_diffusion``) or a mapping ``{name, preset?, <field>: value}``."""
        if isinstance(entry, str):
            return cls(entry, entry)
        if not isinstance(entry, Mapping) or "name" not in entry:
            raise ValueError(f"variant {entry!r} must be a preset name or a mapping with 'name'")
        data = ("name", "preset", "overlap_ratio", "pseudo_source")
        rest = {k: v for k, v in entry.items() if k not in data}
        name = entry["name"]
        preset = entry.get("preset", name if name in VARIANTS else "full")
        return cls(name, preset, rest, float(entry.get("overlap_ratio", 1.0)),
                   str(entry.get("pseudo_source", "llm")))


@dataclass(frozen=True)
class LGCDStageConfig:
    """The ``lgcd:`` section: base model config, variants to train, device and validation."""

    model: LGCDConfig = field(default_factory=LGCDConfig)  # shared by every variant
    variants: tuple[VariantSpec, ...] = (VariantSpec("full"),)
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", "cuda:N"
    threads: int = 0  # torch CPU threads; 0 = the step's share of the cores (pipeline.executors)
    valid_negatives: int = 999  # sampled target-domain negatives per validation user
    max_valid_users: int | None = None  # seeded sample of the valid split; None = all

    def __post_init__(self) -> None:
        if not self.variants:
            raise ValueError("variants is empty; list at least one (e.g. [full])")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names repeat: {names}")
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"device={self.device!r}; use auto, cpu, cuda or cuda:N")
        if not isinstance(self.threads, int) or self.threads < 0:
            raise ValueError(f"threads={self.threads!r}; must be an integer >= 0")
        if not isinstance(self.valid_negatives, int) or self.valid_negatives < 1:
            raise ValueError(f"valid_negatives={self.valid_negatives!r}; must be >= 1")
        if self.max_valid_users is not None and self.max_valid_users < 1:
            raise ValueError(f"max_valid_users={self.max_valid_users}; must be >= 1 or null")
        for spec in self.variants:
            self.variant_config(spec)  # every variant must be a valid LGCDConfig

    def variant_config(self, spec: VariantSpec) -> LGCDConfig:
        """Base fields, then the preset's, then the variant's own overrides."""
        try:
            return LGCDConfig(**{**self.model.to_dict(), **VARIANTS[spec.preset],
                                 **spec.overrides})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"variant {spec.name!r}: {exc}") from exc

    @classmethod
    def from_mapping(cls, raw: Any, *, d: int, max_len: int, seed: int) -> "LGCDStageConfig":
        """Parse the ``lgcd:`` section: the model's fields and the stage's own.

        ``d`` is not a setting of this section: LGCD reads the encoders' d-sized outputs, so
        ``encoder.d`` owns it. ``max_len`` and ``seed`` default to ``encoder.max_len`` and the
        dataset seed.
        """
        if raw is not None and not isinstance(raw, Mapping):
            raise ValueError(f"must be a mapping, got {raw!r}")
        raw = dict(raw or {})
        unknown = set(raw) - _STAGE_FIELDS - _MODEL_FIELDS
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}; allowed "
                             f"{sorted((_STAGE_FIELDS | _MODEL_FIELDS) - {'d'})}")
        stage = {k: raw.pop(k) for k in _STAGE_FIELDS if k in raw}
        variants = stage.pop("variants", ["full"])
        if not isinstance(variants, list):
            raise ValueError(f"variants must be a list, got {variants!r}")
        model = from_mapping(LGCDConfig, raw, inherited={"d": d, "max_len": max_len, "seed": seed},
                             owned_elsewhere={"d": "encoder.d"})
        return cls(model=model, variants=tuple(VariantSpec.parse(v) for v in variants), **stage)
