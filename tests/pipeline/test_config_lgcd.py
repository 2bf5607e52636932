"""The ``lgcd:`` section of a dataset YAML: defaults sized to the encoders, errors name the field."""

import pytest

from pipeline.config import ConfigError, load_dataset_config
from tests.conftest import write_demo_yaml


def test_defaults_follow_the_encoders_and_the_seed(tmp_path):
    path = write_demo_yaml(tmp_path, encoder={"d": 32, "n_heads": 2, "max_len": 20}, seed=4,
                           lgcd={"variants": ["full", "wo_diffusion"]}, evaluation={"seeds": [0]})
    cfg = load_dataset_config(path)
    model = cfg.lgcd.model
    assert (model.d, model.max_len, model.n_k, model.seed) == (32, 20, 10, 4)
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
    ({"d": 32}, "lgcd: d is set by encoder.d"),
    ({"n_k": 5000}, "n_k=5000; allowed [1, 200]"),
    ({"variants": [{"name": "nk_big", "n_k": 201}]}, "variant 'nk_big': LGCDConfig: n_k=201"),
    ({"variants": [{"name": "wide", "d": 128}]}, "variant 'wide': d is set by encoder.d"),
    ({"max_len": 80}, "variant 'full' has d=64, max_len=80; the encoders have d=64, max_len=50"),
    ({"device": ""}, "device=''"),
    ({"lam": {"A": 0.5}}, "lam must map the target domains"),
    ("fast", "lgcd: must be a mapping"),
])
def test_bad_lgcd_sections_name_file_and_field(tmp_path, lgcd, message):
    path = write_demo_yaml(tmp_path, lgcd=lgcd)
    with pytest.raises(ConfigError) as err:
        load_dataset_config(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_grounding_retrieves_the_largest_nk_of_any_model(tmp_path):
    """nK has one owner (lgcd.n_k and its overrides); the retrieval depth follows from it."""
    plain = load_dataset_config(write_demo_yaml(tmp_path, lgcd={"n_k": 7}, evaluation={"seeds": [0]}))
    assert plain.pseudo_items_retrieved == 7
    variant = load_dataset_config(write_demo_yaml(
        tmp_path, lgcd={"n_k": 7, "variants": ["full", {"name": "nk_30", "n_k": 30}]},
        evaluation={"seeds": [0]}))
    assert variant.pseudo_items_retrieved == 30 and variant.lgcd.model.n_k == 7
    swept = load_dataset_config(write_demo_yaml(tmp_path, lgcd={"n_k": 7}, evaluation={"sweep": {}}))
    assert swept.pseudo_items_retrieved == 20  # the paper's Figure 3 grid: nK in {5, 10, 20}
    with pytest.raises(ConfigError, match="grounding: n_k is set by lgcd.n_k"):
        load_dataset_config(write_demo_yaml(tmp_path, grounding={"n_k": 20}))
