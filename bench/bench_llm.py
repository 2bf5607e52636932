"""vLLM against the transformers backend: same prompts, same model, same run (tokens/s).

Both backends run through the worker (workers/llm.py) in the LLM environment,
exactly as the pipeline runs them. Greedy decoding, 96 new tokens, 64 chat
prompts that share the real template's instruction prefix.

    .venv/bin/python -m bench.bench_llm [--model DIR] [--prompts 64]
"""

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from assets.llm import WORKER, worker_env
from bench.harness import report
from models.prompts import build_messages, load_template, shared_prefix
from models.pseudo import DEFAULT_TEMPLATE, GenerationConfig
from models.synthetic import THEMES
from pipeline import settings, storage

LLM_PYTHON = settings.PROJECT_ROOT / ".venv-llm" / "bin" / "python"


def _model_folder(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    root = Path(settings.storage_root_default())
    version = storage.latest_version(root, ["llm_model"])
    if version is None:
        raise SystemExit("no llm_model version found: run `make demo` first or pass --model DIR")
    return root / "llm_model" / version / "files"


def _prompts(n: int) -> list[dict]:
    tpl = load_template(DEFAULT_TEMPLATE)
    cats = ("Grocery_and_Gourmet_Food", "Home_and_Kitchen")
    prefix = shared_prefix(tpl, *cats, 5, [])
    themes = list(THEMES.values())
    rows = []
    for i in range(n):
        words, food, _ = themes[i % len(themes)]
        history = [f"{words[j % 3]} {food[(i + j) % len(food)]}" for j in range(5)]
        rows.append({"id": f"p{i}", "messages": build_messages(tpl, prefix, *cats, 5, history)})
    return rows


def _run(backend: str, model: Path, prompts: list[dict], work: Path) -> dict:
    work.mkdir(parents=True)
    (work / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    cfg = GenerationConfig()
    spec = {"model_path": str(model), "seed": 0, "output_format": "list", "n_items": 5,
            "max_title_chars": 80, "temperature": 0.0, "top_p": 1.0, "max_tokens": 96,
            "backend": backend, "dtype": cfg.dtype, "max_model_len": 2048,
            "chunk_size": len(prompts), "chunk_dir": str(work / "chunks"),
            "prompts_path": str(work / "prompts.jsonl")}
    (work / "spec.json").write_text(json.dumps(spec))
    out = subprocess.run([str(LLM_PYTHON), str(WORKER), "generate", "--spec", str(work / "spec.json")],
                         capture_output=True, text=True, env=worker_env(), check=True)
    return json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    parser.add_argument("--prompts", type=int, default=64)
    args = parser.parse_args()
    model = _model_folder(args.model)
    prompts = _prompts(args.prompts)
    with tempfile.TemporaryDirectory() as tmp:
        vllm = _run("vllm", model, prompts, Path(tmp) / "vllm")
        hf = _run("transformers", model, prompts, Path(tmp) / "hf")
    report("llm_generation_tokens_per_s", vllm["tokens_per_s"], hf["tokens_per_s"], "tokens/s",
           higher_is_better=True, figure_backend=vllm["backend"], baseline_backend=hf["backend"],
           prompts=len(prompts), prefix_cache_hit_rate=vllm.get("prefix_cache_hit_rate"),
           vllm_engine_start_s=vllm.get("engine_start_s"))


if __name__ == "__main__":
    main()
