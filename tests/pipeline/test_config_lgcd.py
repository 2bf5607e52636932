"""The ``lgcd:`` section of a dataset YAML: defaults sized to the encoders, errors name the field."""

import pytest

from pipeline.config import ConfigError, load_dataset_config
from tests.conftest import write_demo_yaml


def test_defaults_follow_the_encoders_grounding_and_seed(tmp_path):
    path = write_demo_yaml(tmp_path, encoder={"d": 32, "n_heads": 2, "max_len": 20}, grounding={"n_k": 7},
                  seed=4, lgcd={"variants": ["full", "wo_diffusion"]},
                  evaluation={"seeds": [0]})  # no sweep: its nK grid needs grounding.n_k >= 20
    cfg = load_dataset_config(path)
    model = cfg.lgcd.model
    assert (model.d, model.max_len, model.n_k, model.seed) == (32, 20, 7, 4)
    assert [v.name for v in cfg.lgcd.variants] == ["full", "wo_diffusion"]
    assert cfg.lgcd.variant_config(cfg.lgcd.variants[1]).use_diffusion is False


def test_every_paper_variant_parses_from_yaml(tmp_path):
    from models.lgcd.config import VARIANTS

    sweep = [{"name": "t_50", "T": 50}, {"name": "lam_07", "lam": {"A": 0.7, "B": 0.7}},
             {"name": "experts_4", "n_experts": 4}, {"name": "nk_5", "n_k": 5},
             {"name": "overlap_60", "overlap_ratio": 0.6}, {"name": "seed_1", "seed": 1}]
    cfg = load_dataset_config(write_demo_yaml(tmp_path, lgcd={"variants": [*VARIANTS, *sweep]}))
    assert len(cfg.lgcd.variants) == len(VARIANTS) + len(sweep)


@pytest.mark.parametrize(("lgcd", "message"), [
    ({"colour": "red"}, "lgcd: unknown fields ['colour']"),
    ({"T": 0}, "lgcd: LGCDConfig: T=0"),
    ({"variants": ["wo_magic"]}, "unknown preset 'wo_magic'"),
    ({"variants": [{"name": "nk_30", "n_k": 30}]}, "variant 'nk_30' has n_k=30 but grounding.n_k=20"),
    ({"device": ""}, "device=''"),
    ({"lam": {"A": 0.5}}, "lam must map the target domains"),
    ("fast", "lgcd must be a mapping"),
])
def test_bad_lgcd_sections_name_file_and_field(tmp_path, lgcd, message):
    path = write_demo_yaml(tmp_path, lgcd=lgcd)
    with pytest.raises(ConfigError) as err:
        load_dataset_config(path)
    assert str(path) in str(err.value) and message in str(err.value)
