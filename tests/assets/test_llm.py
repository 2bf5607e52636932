"""``llm_model``: the packaged model converted by the launcher, or a user's folder referenced."""

import dataclasses
import json

import dagster as dg

from assets import llm
from pipeline import storage
from pipeline.resources import PipesLLMLauncher, ReplayLLMLauncher
from tests.assets.stubs import storage as storage_resources
from tests.conftest import latest_materialization


def materialize(cfg, root, instance, launcher) -> dg.ExecuteInProcessResult:
    return dg.materialize(llm.build(cfg), resources={**storage_resources(root), "llm": launcher},
                          instance=instance, raise_on_error=False)


def failure_message(result) -> str:
    return " ".join(e.step_failure_data.error.message for e in result.all_events if e.is_step_failure)


def with_model(cfg, model: str):
    return dataclasses.replace(cfg, generation=dataclasses.replace(cfg.generation, model=model))


def test_packaged_model_is_converted_by_the_launcher(demo_cfg, storage_root, instance):
    assert materialize(demo_cfg, storage_root, instance, ReplayLLMLauncher()).success
    meta = latest_materialization(instance, "llm_model").metadata
    assert meta["stored"].value == "converted"
    tree = storage.read(meta["path"].value)
    assert json.loads((llm.model_folder(tree) / "config.json").read_text()) == {"replay_of": llm.PACKAGE}


def test_own_model_folder_is_referenced_with_fingerprints(demo_cfg, storage_root, instance, tmp_path):
    folder = tmp_path / "qwen"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    assert materialize(with_model(demo_cfg, str(folder)), storage_root, instance, ReplayLLMLauncher()).success
    meta = latest_materialization(instance, "llm_model").metadata
    assert meta["stored"].value == "reference"
    tree = storage.read(meta["path"].value)
    assert llm.model_folder(tree) == folder
    ref = json.loads((tree.path / llm.MODEL_REF).read_text())
    assert sorted(ref["fingerprints"]) == ["config.json", "model.safetensors"]


def test_own_model_folder_without_weights_fails_with_its_path(demo_cfg, storage_root, instance, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    result = materialize(with_model(demo_cfg, str(tmp_path)), storage_root, instance, ReplayLLMLauncher())
    assert not result.success
    assert f"LLM model folder {tmp_path} holds no *.safetensors or *.bin weights" in failure_message(result)


def test_missing_llm_python_fails_with_its_path(demo_cfg, storage_root, instance, tmp_path):
    missing = tmp_path / "venv" / "bin" / "python"
    result = materialize(demo_cfg, storage_root, instance, PipesLLMLauncher(llm_python=str(missing)))
    assert not result.success
    assert f"llm_python {missing} does not exist" in failure_message(result)
