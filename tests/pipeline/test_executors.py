"""Every executor configuration loads with the real definitions (no cluster needed)."""

import dagster as dg
import pytest

from pipeline.definitions import build_definitions
from pipeline.executors import EXECUTORS, gpu_steps, k8s_config


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
