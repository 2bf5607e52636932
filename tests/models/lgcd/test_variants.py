"""The ``lgcd:`` section: base config, presets and per-variant overrides; errors name the field."""


import pytest

from models.lgcd.variants import LGCDStageConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_variants_layer_base_preset_and_overrides():
    stage = LGCDStageConfig.from_mapping(
        {"epochs": 7, "n_k": 5, "variants": ["full", "wo_moe", {"name": "experts_4", "n_experts": 4},
                                   {"name": "cfg_w2", "preset": "cond_cfg", "cfg_weight": 2.0},
                                   {"name": "overlap_20", "overlap_ratio": 0.2},
                                   {"name": "pseudo_none", "pseudo_source": "none"}]},
        d=16, max_len=20, seed=0)
    cfgs = {v.name: stage.variant_config(v) for v in stage.variants}
    assert all(c.epochs == 7 and c.d == 16 and c.max_len == 20 and c.n_k == 5
               for c in cfgs.values())
    assert cfgs["full"] == stage.model and cfgs["wo_moe"].fusion == "linear"
    assert cfgs["experts_4"].n_experts == 4 and cfgs["experts_4"].fusion == "moe"
    assert cfgs["cfg_w2"].conditioning == "cfg" and cfgs["cfg_w2"].cfg_weight == 2.0
    assert stage.variants[-2].overlap_ratio == 0.2 and cfgs["overlap_20"] == stage.model
    assert stage.variants[-1].pseudo_source == "none" and cfgs["pseudo_none"] == stage.model
    assert stage.variants[0].pseudo_source == "llm"

@pytest.mark.parametrize(("raw", "match"), [
    ({"colour": 1}, "unknown fields"),
    ({"d": 32}, "d is set by encoder.d"),
    ("fast", "must be a mapping"),
    ({"variants": ["wo_everything"]}, "unknown preset 'wo_everything'"),
    ({"variants": [{"name": "Bad-Name"}]}, "snake_case"),
    ({"variants": [{"name": "x", "n_experts": 0}]}, "variant 'x'.*n_experts=0"),
    ({"variants": [{"name": "x", "bogus": 1}]}, "unknown fields"),
    ({"variants": ["full", "full"]}, "repeat"),
    ({"variants": []}, "empty"),
    ({"threads": -1}, "threads=-1"),
    ({"variants": [{"name": "o", "overlap_ratio": 0}]}, "overlap_ratio=0"),
])
def test_bad_stage_configs_name_the_field(raw, match):
    with pytest.raises(ValueError, match=match):
        LGCDStageConfig.from_mapping(raw, d=64, max_len=50, seed=0)
