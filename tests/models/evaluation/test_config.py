"""Evaluation config parsing: the paper's defaults and errors that name the bad field."""

import pytest

from models.evaluation.config import EvaluationConfig, SweepConfig


def test_defaults_follow_the_paper_protocol():
    cfg = EvaluationConfig.from_mapping(None)
    assert (cfg.seeds, cfg.n_negatives, cfg.protocols, cfg.sweep) == ((0, 1, 2), 999,
                                                                     ("all", "target"), None)
    assert EvaluationConfig.from_mapping({"protocols": ["target"]}).primary == "target"
    assert EvaluationConfig.from_mapping({"sweep": {}}).sweep == SweepConfig()


@pytest.mark.parametrize(("raw", "message"), [
    ({"colour": 1}, "unknown fields ['colour']"),
    ({"sequential": {"depth": 2}}, "sequential: unknown fields ['depth']"),
    ({"protocols": ["some"]}, "evaluation.protocols=['some']; need distinct protocols from"),
    ({"protocols": ["all", "all"]}, "evaluation.protocols=['all', 'all']"),
    ({"protocols": []}, "evaluation.protocols=[]"),
    ({"seeds": [1, 1]}, "need distinct seeds"),
    ({"seeds": []}, "need distinct seeds"),
    ({"baselines": ["bpr"]}, "unknown ['bpr']"),
    ({"sweep": {"lam": [0.0]}}, "evaluation.sweep.lam"),
    ({"sequential": {"d": 10, "n_heads": 4}}, "not divisible"),
    ({"variant_seeds": [3]}, "evaluation.variant_seeds=[3]; need a non-empty subset"),
    ({"variant_seeds": []}, "need a non-empty subset"),
])
def test_bad_sections_name_the_field(raw, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        EvaluationConfig.from_mapping(raw)
