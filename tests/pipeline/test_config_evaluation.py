"""The ``evaluation:`` section of a dataset YAML: defaults, the sweep switch, errors name the field."""

import pytest

from pipeline.config import ConfigError, load_dataset_config
from pipeline.settings import PROJECT_ROOT
from tests.conftest import write_demo_yaml


def test_no_section_means_the_papers_protocol_over_three_seeds(tmp_path):
    ev = load_dataset_config(write_demo_yaml(tmp_path, drop=("evaluation",))).evaluation
    assert (ev.protocols, ev.n_negatives, ev.seeds, ev.sweep) == (("all", "target"), 999,
                                                                  (0, 1, 2), None)
    assert ev.primary == "all"  # the paper's protocol leads: validation, significance, table1


def test_the_sweep_grid_defaults_to_the_papers(tmp_path):
    cfg = load_dataset_config(write_demo_yaml(tmp_path, lgcd={"n_k": 10},
                                              evaluation={"sweep": {"lam": [0.3, 0.7]}}))
    assert cfg.evaluation.sweep.n_k == (5, 10, 20) and cfg.evaluation.sweep.lam == (0.3, 0.7)
    assert cfg.lgcd.model.n_k == 10


@pytest.mark.parametrize(("section", "message"), [
    ({"seeds": [0, 0]}, "need distinct seeds"),
    ({"protocols": ["all", "random"]}, r"evaluation.protocols=\['all', 'random'\]"),
    ({"protocols": []}, r"evaluation.protocols=\[\]"),
    ({"protocols": ["target", "target"]}, r"evaluation.protocols=\['target', 'target'\]"),
    ({"protocols": "all"}, "evaluation.protocols='all'"),
    ({"negatives": "all"}, r"evaluation: unknown fields \['negatives'\]"),
    ({"emcdr": {"layers": 3}}, r"evaluation.emcdr: unknown fields \['layers'\]"),
])
def test_errors_name_the_file_and_field(tmp_path, section, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_dataset_config(write_demo_yaml(tmp_path, evaluation=section))
    assert "c.yaml" in str(info.value)


def test_shipped_configs_load():
    for name in ("demo", "food_kitchen_llmcdsr"):
        cfg = load_dataset_config(PROJECT_ROOT / "configs" / f"{name}.yaml")
        assert cfg.evaluation.seeds and len(cfg.evaluation.seeds) >= 3
        assert cfg.evaluation.protocols == ("all", "target")
