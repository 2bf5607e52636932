import pytest

from models.lgcd.config import ABLATIONS, CONDITIONING_VARIANTS, VARIANTS, LGCDConfig


def test_defaults_follow_the_paper():
    cfg = LGCDConfig()
    assert (cfg.d, cfg.n_heads, cfg.T, cfg.n_experts, cfg.lr) == (64, 4, 100, 8, 1e-3)
    assert (cfg.batch_size, cfg.overlap_batch_size, cfg.n_k) == (128, 64, 10)
    assert (cfg.beta_min, cfg.beta_max) == (0.001, 0.1)
    assert cfg.t_start("A") == 50 and cfg.t_start("B") == 30  # Food 0.5, Kitchen 0.3
    assert LGCDConfig(lam={"A": 0.7, "B": 0.7}).t_start("B") == 70
    assert LGCDConfig(T=10, lam={"A": 0.01, "B": 1.0}).t_start("A") == 1


def test_every_table_and_figure_variant_is_named():
    assert set(ABLATIONS) == {"full", "wo_diffusion", "wo_overlap_diffusion", "wo_pseudo_diffusion",
                              "wo_alignment", "wo_guesser", "wo_moe", "wo_overlap_cyclic"}
    assert len(CONDITIONING_VARIANTS) == 6
    for name in VARIANTS:
        LGCDConfig.variant(name)
    assert LGCDConfig.variant("wo_moe", d=32).fusion == "linear"
    with pytest.raises(ValueError, match="unknown LGCD variant"):
        LGCDConfig.variant("wo_everything")


def test_round_trip_through_dict():
    cfg = LGCDConfig.variant("cond_cfg", d=32, lam={"A": 0.6, "B": 0.2})
    assert LGCDConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown fields"):
        LGCDConfig.from_dict({"dd": 3})


@pytest.mark.parametrize("bad, match", [
    (dict(d=30), "multiple of n_heads"),
    (dict(beta_min=0.2), "beta_min"),
    (dict(lam={"A": 0.5}), "lam must map"),
    (dict(lam={"A": 0.5, "B": 0.0}), "lam\\['B'\\]"),
    (dict(conditioning="film"), "conditioning"),
    (dict(target="v"), "target"),
    (dict(sq_reduce="max"), "sq_reduce"),
    (dict(conditioning="cfg", cfg_drop=0.0), "cfg_drop"),
    (dict(diffuse_overlap=False, diffuse_pseudo=False), "use_diffusion=False"),
    (dict(w_align=-1.0), "w_align"),
    (dict(batch_size=0), "batch_size"),
    (dict(lr=0.0), "lr"),
])
def test_invalid_configs_are_rejected_with_the_field_named(bad, match):
    with pytest.raises(ValueError, match=match):
        LGCDConfig(**bad)
