"""Which trained LGCD models the evaluation needs beyond the configured variants.

Two kinds, both expressed as ``VariantSpec``s of the LGCD stage so that the same
asset factory (assets/lgcd.py) trains them:

* seed replicas: every configured variant once more for each evaluation seed other
  than its own (``<variant>_seed<s>``), so tables report mean ± std over seeds;
* sweep points (Figure 3): the ``full`` variant with one of nK, T or lambda changed
  (``sweep_<param>_<value>``); the default value of a parameter is the full variant itself,
  or ``sweep_base`` (one model for all such points) when the sweep sets its own epochs.

Model names in result tables: variant ``full`` is ``lgcd``, any other ``lgcd_<name>``.
"""

from dataclasses import dataclass

from models.evaluation.config import SweepConfig
from models.lgcd.variants import LGCDStageConfig, VariantSpec


def model_name(variant: str) -> str:
    return "lgcd" if variant == "full" else f"lgcd_{variant}"


@dataclass(frozen=True)
class Replica:
    """One trained model of a variant: the variant's own asset or a seed replica."""

    model: str  # result-table name, e.g. lgcd_wo_diffusion
    variant: str  # configured variant name
    seed: int
    spec: VariantSpec  # what to train (the variant itself when seed is its own)


def replicas(stage: LGCDStageConfig, seeds: tuple[int, ...],
             variant_seeds: tuple[int, ...] | None = None) -> list[Replica]:
    """For every configured variant and evaluation seed, the model to rank on that seed.

    A variant's own seed (``lgcd.seed``, by default the dataset seed) uses the variant's
    asset; other seeds get a replica spec with ``seed`` overridden. A variant whose own
    seed is not in ``seeds`` is not evaluated under it (its asset is still trained).
    ``variant_seeds`` narrows the seeds of every variant but ``full``: Table 3 ablations
    are single runs in the paper, and each extra seed is one more training per variant.
    """
    out = []
    for spec in stage.variants:
        own = stage.variant_config(spec).seed
        chosen = seeds if spec.name == "full" or variant_seeds is None else variant_seeds
        for seed in chosen:
            if seed == own:
                out.append(Replica(model_name(spec.name), spec.name, seed, spec))
            else:
                twin = VariantSpec(f"{spec.name}_seed{seed}", spec.preset,
                                   {**spec.overrides, "seed": seed}, spec.overlap_ratio)
                out.append(Replica(model_name(spec.name), spec.name, seed, twin))
    return out


def extra_specs(stage: LGCDStageConfig, seeds: tuple[int, ...], sweep: SweepConfig | None,
                variant_seeds: tuple[int, ...] | None = None) -> list[VariantSpec]:
    """Specs to train besides ``stage.variants``: seed replicas and sweep points, deduplicated."""
    known = {s.name: s for s in stage.variants}
    out: dict[str, VariantSpec] = {}
    generated = ([r.spec for r in replicas(stage, seeds, variant_seeds)]
                 + [p.spec for p in sweep_points(stage, sweep)])
    clash = sorted({s.name for s in generated if s.name in known and s != known[s.name]})
    if clash:
        raise ValueError(f"lgcd variant names {clash} collide with generated seed replicas or "
                         "sweep points; rename those variants")
    for spec in generated:
        if spec.name not in known and spec.name not in out:
            out[spec.name] = spec
    return list(out.values())


@dataclass(frozen=True)
class SweepPoint:
    param: str  # "n_k" | "T" | "lam"
    value: float
    spec: VariantSpec


def _value_name(value: float) -> str:
    return str(value).replace(".", "p")


def sweep_points(stage: LGCDStageConfig, sweep: SweepConfig | None) -> list[SweepPoint]:
    """The full variant with one parameter changed per point (lambda set for both targets)."""
    if sweep is None:
        return []
    full = next((s for s in stage.variants if s.name == "full"), VariantSpec("full"))
    base = stage.variant_config(full)
    epochs = {} if sweep.epochs is None or sweep.epochs == base.epochs else {"epochs": sweep.epochs}
    out = []
    for param, value in sweep.points():
        change = {"lam": {"A": value, "B": value}} if param == "lam" else {param: value}
        if all(getattr(base, k) == v for k, v in change.items()):  # the base point itself
            name, change = "sweep_base", {}
        else:
            name = f"sweep_{param.lower()}_{_value_name(value)}"
        spec = full if not (change or epochs) else VariantSpec(
            name, full.preset, {**full.overrides, **change, **epochs}, full.overlap_ratio)
        out.append(SweepPoint(param, value, spec))
    return out
