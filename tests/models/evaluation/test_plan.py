"""The plan of extra LGCD trainings: seed replicas and sweep points, named without clashes."""

import pytest

from models.evaluation.config import EvaluationConfig, SweepConfig
from models.evaluation.plan import extra_specs, model_name, replicas, sweep_points
from models.lgcd.config import LGCDConfig
from models.lgcd.variants import LGCDStageConfig, VariantSpec

STAGE = LGCDStageConfig(model=LGCDConfig(seed=0, n_k=10),
                        variants=(VariantSpec("full"), VariantSpec("wo_diffusion", "wo_diffusion")))


def test_replicas_reuse_the_variants_own_seed():
    reps = replicas(STAGE, (0, 1, 2))
    assert [(r.model, r.seed, r.spec.name) for r in reps] == [
        ("lgcd", 0, "full"), ("lgcd", 1, "full_seed1"), ("lgcd", 2, "full_seed2"),
        ("lgcd_wo_diffusion", 0, "wo_diffusion"), ("lgcd_wo_diffusion", 1, "wo_diffusion_seed1"),
        ("lgcd_wo_diffusion", 2, "wo_diffusion_seed2")]
    twin = reps[4].spec
    assert twin.preset == "wo_diffusion" and twin.overrides == {"seed": 1}
    assert STAGE.variant_config(twin).use_diffusion is False
    assert model_name("full") == "lgcd" and model_name("wo_moe") == "lgcd_wo_moe"


def test_variant_seeds_narrow_only_the_other_variants():
    reps = replicas(STAGE, (0, 1, 2), variant_seeds=(0,))
    assert [(r.model, r.seed, r.spec.name) for r in reps] == [
        ("lgcd", 0, "full"), ("lgcd", 1, "full_seed1"), ("lgcd", 2, "full_seed2"),
        ("lgcd_wo_diffusion", 0, "wo_diffusion")]
    assert [s.name for s in extra_specs(STAGE, (0, 1, 2), None, (0,))] == ["full_seed1", "full_seed2"]
    assert EvaluationConfig.from_mapping({"variant_seeds": [1]}).variant_seeds == (1,)


def test_sweep_points_reuse_the_full_model_where_equal():
    points = sweep_points(STAGE, SweepConfig(n_k=(5, 10), T=(50, 100), lam=(0.5,)))
    names = [(p.param, p.value, p.spec.name) for p in points]
    assert names == [("n_k", 5, "sweep_n_k_5"), ("n_k", 10, "full"), ("T", 50, "sweep_t_50"),
                     ("T", 100, "full"), ("lam", 0.5, "sweep_lam_0p5")]
    assert points[-1].spec.overrides == {"lam": {"A": 0.5, "B": 0.5}}
    with_epochs = sweep_points(STAGE, SweepConfig(n_k=(5, 10), T=(100,), lam=(), epochs=2))
    # other epochs: not the full model, but one shared base model for every default value
    assert [p.spec.name for p in with_epochs] == ["sweep_n_k_5", "sweep_base", "sweep_base"]
    assert with_epochs[1].spec.overrides == {"epochs": 2}
    assert with_epochs[0].spec.overrides == {"n_k": 5, "epochs": 2}
    assert sweep_points(STAGE, None) == []


def test_extra_specs_deduplicate():
    extra = extra_specs(STAGE, (0, 1), SweepConfig(n_k=(5, 10), T=(), lam=()))
    assert [s.name for s in extra] == ["full_seed1", "wo_diffusion_seed1", "sweep_n_k_5"]


def test_generated_names_must_not_clash_with_configured_ones():
    stage = LGCDStageConfig(variants=(VariantSpec("full"), VariantSpec("full_seed1", "full")))
    with pytest.raises(ValueError, match="collide"):
        extra_specs(stage, (0, 1), None)
