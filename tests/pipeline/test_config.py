import pytest

from pipeline.config import ConfigError, load_dataset_config
from pipeline.settings import PROJECT_ROOT
from tests.conftest import write_demo_yaml


@pytest.mark.parametrize("name", sorted(p.stem for p in (PROJECT_ROOT / "configs").glob("*.yaml")))
def test_shipped_configs_load(name):
    cfg = load_dataset_config(PROJECT_ROOT / "configs" / f"{name}.yaml")
    assert cfg.name and set(cfg.domains) == {"A", "B"}


@pytest.mark.parametrize(("override", "message"), [
    ({"format": "csv"}, "format='csv'"),
    ({"k_core": 0}, "k_core=0"),
    ({"seed": "one"}, "seed='one'; must be an integer"),
    ({"train_fraction": 1.0}, "train_fraction=1.0"),
    ({"executor": "celery"}, "executor='celery'; allowed"),
    ({"colour": "red"}, "unknown fields"),
    ({"synthetic": {"n_reviews": 5}}, "n_reviews=5 is out of range"),
    ({"synthetic": {"overlap_fraction": 2.0}}, "overlap_fraction=2.0 is out of range"),
    ({"synthetic": {"domains": ["X", "Y"]}}, "synthetic: domains is set by domains.A/B.category"),
    ({"domains": {"A": {"category": "Food"}, "B": {"reviews": "r.json"}}}, "domains.B: category is missing"),
    ({"domains": {"A": {"category": "Food"}}}, "domains must have exactly the keys A and B, got ['A']"),
    ({"domains": {"A": "Food", "B": "Kitchen"}}, "domains.A: category is missing"),
    ({"domains": {"A": {"category": "Food"}, "B": {"category": "Food"}}}, "must be different categories"),
    ({"grounding": {"index": {"kind": "lsh"}}}, "grounding.index: index kind='lsh'"),
    ({"window_days": 0}, "window_days=0; must be a positive integer or null"),
    ({"history_policy": "loose"}, "history_policy='loose'; allowed ['strict', 'full']"),
])
def test_bad_configs_name_file_and_field(tmp_path, override, message):
    path = write_demo_yaml(tmp_path, **override)
    with pytest.raises(ConfigError) as err:
        load_dataset_config(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml does not exist"):
        load_dataset_config(tmp_path / "nope.yaml")


def test_amazon_format_requires_paths(tmp_path):
    path = write_demo_yaml(tmp_path, format="amazon2018")
    with pytest.raises(ConfigError, match="domains.A needs 'reviews' and 'meta'"):
        load_dataset_config(path)


def test_the_dataset_seed_seeds_every_stage_unless_a_section_sets_its_own(tmp_path):
    cfg = load_dataset_config(write_demo_yaml(tmp_path, seed=7))
    seeds = (cfg.synthetic.seed, cfg.encoder.seed, cfg.generation.seed, cfg.grounding.seed,
             cfg.lgcd.model.seed)
    assert seeds == (7, 7, 7, 7, 7)
    own = load_dataset_config(write_demo_yaml(tmp_path, seed=7, encoder={"seed": 3, "epochs": 2},
                                              generation={"seed": 4}, grounding={"seed": 5}))
    assert (own.encoder.seed, own.generation.seed, own.grounding.seed) == (3, 4, 5)
