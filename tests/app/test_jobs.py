"""The evaluate and sweep jobs select exactly the evaluation stage and the Figure 3 sweep."""

import dataclasses

from app.definitions import build_definitions
from models.evaluation.config import SweepConfig


def job_keys(defs, name: str) -> set[str]:
    return {k.to_user_string() for k in defs.resolve_job_def(name).asset_layer.executable_asset_keys}


def test_evaluate_and_sweep_jobs(demo_cfg, tmp_path):
    ev = dataclasses.replace(demo_cfg.evaluation, sweep=SweepConfig(n_k=(5,), T=(50,), lam=()))
    defs = build_definitions(dataclasses.replace(demo_cfg, evaluation=ev), tmp_path)
    evaluate = job_keys(defs, "evaluate")
    assert {"eval_candidates", "ranks_popularity", "ranks_sasrec", "ranks_emcdr", "ranks_lgcd",
            "evaluation", "report"} <= evaluate
    assert not {k for k in evaluate if "sweep" in k or k.startswith("lgcd_model")}
    assert job_keys(defs, "sweep") == {"lgcd_model_sweep_n_k_5", "lgcd_model_sweep_t_50",
                                       "ranks_sweep", "report"}


def test_without_a_sweep_the_sweep_job_only_refreshes_the_report(demo_cfg, tmp_path):
    defs = build_definitions(dataclasses.replace(
        demo_cfg, evaluation=dataclasses.replace(demo_cfg.evaluation, sweep=None)), tmp_path)
    assert job_keys(defs, "sweep") == {"report"}
    graph = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert "ranks_sweep" not in graph and {"lgcd_model_full_seed1", "lgcd_model_full_seed2"} <= graph


def test_pseudo_refresh_reruns_the_llm_stage_and_everything_below_it_only(demo_cfg, tmp_path):
    defs = build_definitions(demo_cfg, tmp_path)
    refresh = job_keys(defs, "pseudo_refresh")
    assert {"pseudo_generations", "pseudo_sequences", "lgcd_model", "ranks_lgcd", "report"} <= refresh
    assert not refresh & {"raw_sources", "sequences", "llm_model", "sequence_encoder_a", "ranks_popularity"}
    assert job_keys(defs, "full_rebuild") == {k.to_user_string()
                                              for k in defs.resolve_asset_graph().get_all_asset_keys()}
