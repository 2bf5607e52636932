"""Editing the prompt template makes exactly the pseudo stage unsynced, by Dagster's own rules.

Uses Dagster's stale-status resolver (what the UI's "Unsynced" badge shows;
internal API, hence the pinned dagster version). In Dagster 1.13 staleness is
not transitive: after the edit only ``pseudo_generations`` is stale (cause: new
code version); materializing it and its downstream (the UI's "Materialize
unsynced" / `--select 'pseudo_generations*'`) makes everything fresh again,
without re-running any upstream asset. The tiny demo (tests/conftest.py TINY) runs; its LLM
runs for real (transformers backend for speed; the vLLM path runs in the demo end-to-end test).
"""

import shutil

import dagster as dg
import pytest
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus

from app.definitions import build_definitions
from models.pseudo.requests import DEFAULT_TEMPLATE
from pipeline.config import load_dataset_config
from tests.conftest import materialization_count as count
from tests.conftest import write_tiny_yaml

PSEUDO_AND_DOWN = "pseudo_generations*"


def _config(folder, template):
    return load_dataset_config(write_tiny_yaml(folder, generation={"template": str(template)}))


def _stale(defs, instance) -> dict[str, list[str]]:
    graph = defs.resolve_asset_graph()
    resolver = CachingStaleStatusResolver(instance, graph, AssetGraphView.for_test(defs, instance))
    out = {}
    for key in graph.get_all_asset_keys():
        if resolver.get_status(key) == StaleStatus.STALE:
            out[key.to_user_string()] = [c.reason for c in resolver.get_stale_causes(key)]
    return out


@pytest.mark.slow
def test_prompt_edit_marks_only_the_pseudo_stage(tmp_path, instance):
    template = tmp_path / "prompt.yaml"
    shutil.copy(DEFAULT_TEMPLATE, template)
    defs = build_definitions(_config(tmp_path, template), tmp_path / "storage")
    assert defs.resolve_job_def("full_rebuild").execute_in_process(instance=instance).success
    assert _stale(defs, instance) == {}

    template.write_text(template.read_text().replace("You are a shopping assistant.",
                                                     "You are a careful shopping assistant."))
    defs = build_definitions(_config(tmp_path, template), tmp_path / "storage")  # "Reload definitions"
    stale = _stale(defs, instance)
    assert list(stale) == ["pseudo_generations"]
    assert any("code version" in reason for reason in stale["pseudo_generations"])

    upstream = ["raw_sources", "sequences", "item_text_embeddings_a", "sequence_encoder_b", "llm_model"]
    before = {k: count(instance, k) for k in upstream}
    selection = dg.AssetSelection.from_string(PSEUDO_AND_DOWN)
    job = dg.define_asset_job("refresh", selection=selection)
    defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
    assert defs.resolve_job_def("refresh").execute_in_process(instance=instance).success
    assert _stale(defs, instance) == {}
    assert {k: count(instance, k) for k in upstream} == before
    assert count(instance, "pseudo_generations") == 2
