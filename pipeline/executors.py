"""Executors: the same definitions on one machine or a cluster, chosen by ``$LGCD_EXECUTOR``.

* ``multiprocess`` (default): one process per step on this machine; CPU steps
  run concurrently, GPU steps are serialized by the ``gpu`` pool
  (``pipeline/dagster.yaml``).
* ``in_process``: everything in one process (fast start; the CLI demo uses it).
* ``k8s``: dagster-k8s ``k8s_job_executor``: one Kubernetes Job per step; steps
  of GPU assets (``pool="gpu"``) request ``nvidia.com/gpu`` through
  ``per_step_k8s_config``, so CPU steps never hold a GPU.
* ``celery``: dagster-celery, steps as Celery tasks on the workers of a broker;
  GPU steps stay limited by the ``gpu`` pool of the instance.

Cluster settings come from environment variables (README "Scale-out").
"""

import os

import dagster as dg

ENV_EXECUTOR = "LGCD_EXECUTOR"
EXECUTORS = ("multiprocess", "in_process", "k8s", "celery")
GPU_POOL = "gpu"


def executor_name(name: str | None = None) -> str:
    """``name``, else ``$LGCD_EXECUTOR``, else the default ``multiprocess``."""
    return name or os.environ.get(ENV_EXECUTOR, "multiprocess")


def priority(level: int) -> dict[str, str]:
    """Op tags that order ready steps when fewer slots than steps are free (higher first).

    Under ``multiprocess`` on two cores the run's length is set by the chain text
    embeddings -> encoders -> pseudo sequences -> LGCD trainings, and by the two long
    sequential baselines that can run beside it; both start before the short steps that
    fill the gaps (on Food-Kitchen the grounding once waited 6 minutes behind ``bag``).
    ``PRIORITY_CHAIN`` > ``PRIORITY_LONG`` > the default 0.
    """
    return {"dagster/priority": str(level)}


PRIORITY_CHAIN, PRIORITY_LONG = 2, 1


def concurrent_steps(name: str | None = None) -> int:
    """How many steps of one run may share this machine's cores under executor ``name``."""
    return (os.cpu_count() or 2) if executor_name(name) == "multiprocess" else 1


def step_threads(configured: int, executor: str | None = None) -> int:
    """Torch CPU threads for one step: ``configured``, or with 0 the cores left to each step.

    Under ``multiprocess`` as many steps run at once as there are cores, so a step that
    took every core would oversubscribe them (two 1-thread LGCD trainings side by side ran
    at 1.9 times the rate of one with 2 threads); ``in_process`` runs one step at a time
    and k8s / celery steps each own their machine or worker, so those get every core.
    """
    if configured:
        return configured
    return max(1, (os.cpu_count() or 2) // concurrent_steps(executor))


def gpu_pool_slots() -> int:
    """Steps of the ``gpu`` pool that may run at once on this machine.

    One per visible CUDA device keeps two steps off one GPU. Without one the pool's
    steps train on the CPU, whose cores ``step_threads`` already shares out, so holding
    them to one at a time would only leave a core idle (13 LGCD trainings on Food-Kitchen).
    """
    import torch

    return 1 if torch.cuda.is_available() else concurrent_steps("multiprocess")


def gpu_steps(assets: list[dg.AssetsDefinition]) -> list[str]:
    """Names of the steps whose assets declare the GPU pool."""
    return sorted(a.node_def.name for a in assets if getattr(a.node_def, "pool", None) == GPU_POOL)


def _k8s_gpu_config() -> dict:
    gpus = os.environ.get("LGCD_K8S_GPUS_PER_STEP", "1")
    return {"container_config": {"resources": {"limits": {"nvidia.com/gpu": gpus},
                                               "requests": {"nvidia.com/gpu": gpus}}},
            "pod_spec_config": {"node_selector": {"nvidia.com/gpu.present": "true"}}}


def k8s_config(assets: list[dg.AssetsDefinition]) -> dict:
    """``k8s_job_executor`` config: GPU requests only for the GPU pool's steps."""
    return {
        "job_namespace": os.environ.get("LGCD_K8S_NAMESPACE", "dagster"),
        "image_pull_policy": "IfNotPresent",
        "max_concurrent": int(os.environ.get("LGCD_K8S_MAX_CONCURRENT", "8")),
        "env_vars": ["LGCD_DATASET", "LGCD_STORAGE_ROOT"],
        "per_step_k8s_config": {step: _k8s_gpu_config() for step in gpu_steps(assets)},
    }


def build_executor(name: str | None, assets: list[dg.AssetsDefinition],
                   definitions_module: str) -> dg.ExecutorDefinition:
    """Executor for ``name`` (default ``$LGCD_EXECUTOR`` or multiprocess).

    ``definitions_module`` is the module that builds the Definitions (app.definitions), which
    the multiprocess executor's forkserver imports once for every step.
    """
    name = executor_name(name)
    if name not in EXECUTORS:
        raise ValueError(f"{ENV_EXECUTOR}={name!r}; allowed {list(EXECUTORS)}")
    if name == "in_process":
        return dg.in_process_executor
    if name == "multiprocess":
        # forkserver with the definitions preloaded: each step forks from a process that has
        # already imported torch, dagster and the asset graph, instead of paying that per step
        return dg.multiprocess_executor.configured({
            "max_concurrent": concurrent_steps(name),
            "start_method": {"forkserver": {"preload_modules": [definitions_module]}}})
    if name == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor.configured(k8s_config(assets))
    from dagster_celery import celery_executor

    return celery_executor.configured({
        "broker": os.environ.get("LGCD_CELERY_BROKER", "pyamqp://guest@localhost//"),
        "backend": os.environ.get("LGCD_CELERY_BACKEND", "rpc://"),
    })
