"""Every executor configuration loads with the real definitions (no cluster needed)."""

import os

import dagster as dg
import pytest

from app.definitions import build_definitions
from pipeline.executors import ENV_EXECUTOR, EXECUTORS, gpu_steps, k8s_config, step_threads


@pytest.mark.parametrize("name", EXECUTORS)
def test_definitions_load_with_each_executor(name, demo_cfg, tmp_path):
    defs = build_definitions(demo_cfg, tmp_path, executor=name)
    dg.Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("full_rebuild")
    assert job.executor_def.name == {"multiprocess": "multiprocess", "in_process": "in_process",
                                     "k8s": "k8s", "celery": "celery"}[name]


def test_k8s_gpu_steps_request_a_gpu_and_cpu_steps_do_not(demo_cfg, tmp_path):
    defs = build_definitions(demo_cfg, tmp_path, executor="k8s")
    steps = gpu_steps(list(defs.assets))
    assert {"pseudo_generations", "llm_model", "sequence_encoder_a", "sequence_encoder_b"} <= set(steps)
    assert "raw_sources" not in steps
    per_step = k8s_config(list(defs.assets))["per_step_k8s_config"]
    assert set(per_step) == set(steps)
    limits = per_step["pseudo_generations"]["container_config"]["resources"]["limits"]
    assert limits == {"nvidia.com/gpu": "1"}


def test_unknown_executor_is_named(demo_cfg, tmp_path):
    with pytest.raises(ValueError, match="LGCD_EXECUTOR='spark'"):
        build_definitions(demo_cfg, tmp_path, executor="spark")


@pytest.mark.parametrize("executor, cores, expected", [
    ("multiprocess", 2, 1),   # two steps share two cores: one thread each
    ("multiprocess", 16, 1),  # as many steps as cores
    ("in_process", 2, 2),     # one step at a time takes every core
    ("celery", 8, 8),         # a worker's step owns the worker
])
def test_step_threads_share_the_cores_between_concurrent_steps(executor, cores, expected,
                                                               monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert step_threads(0, executor) == expected
    assert step_threads(3, executor) == 3  # a configured count wins
    monkeypatch.setenv(ENV_EXECUTOR, executor)
    assert step_threads(0) == expected


def test_the_long_chain_and_the_long_baselines_start_first(demo_cfg, tmp_path):
    """Ready steps are ordered by dagster/priority: embeddings, encoders and the LLM stage
    gate the LGCD trainings, SASRec and GRU4Rec are the longest steps beside them."""
    defs = build_definitions(demo_cfg, tmp_path, executor="multiprocess")
    tags = {a.node_def.name: a.node_def.tags.get("dagster/priority", "0")
            for a in defs.assets if isinstance(a, dg.AssetsDefinition)}
    for name in ("item_text_embeddings_a", "sequence_encoder_b", "llm_model",
                 "pseudo_generations", "pseudo_sequences"):
        assert tags[name] == "2", name
    assert tags["ranks_sasrec"] == tags["ranks_gru4rec"] == "1"
    assert tags["ranks_bag"] == tags["lgcd_model"] == "0"
