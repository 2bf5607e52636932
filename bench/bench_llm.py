"""vLLM against the transformers backend: same prompts, same model, same run.

Both backends run through the worker (workers/llm.py) in the LLM environment,
exactly as the pipeline runs them, with the shipped engine settings
(``GenerationConfig``). Greedy decoding, 96 new tokens, one chunk of chat prompts
(128) that share the real template's instruction prefix.

Printed: generated tokens/s (the figure; baseline: transformers on the same
prompts, target ratio >= 5), prompt tokens/s computed and served from the prefix
cache, and the GFLOP/s the engine achieved against a 2048² matmul in the same
dtype measured in this run (target >= 40%). A token's FLOPs are 2 x the weights
it passes through: every computed token the 30 layers, a generated token the LM
head too (SmolLM2-135M: 0.21 and 0.27 GFLOP); attention scores are left out
(about 10% more at these prompt lengths), so the fraction is a lower bound.

    .venv/bin/python -m bench.bench_llm [--model DIR] [--prompts 128]
"""

import argparse
import dataclasses
import json
import os
import subprocess
import tempfile
from pathlib import Path

from assets.pseudo import generation_spec
from bench.harness import cpu_model, matmul_peak_gflops, report
from models.data.synthetic import THEMES
from models.pseudo.prompts import build_messages, load_template, shared_prefix
from models.pseudo.requests import DEFAULT_TEMPLATE, GenerationConfig
from pipeline import settings, storage
from pipeline.resources import WORKER, worker_env

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


def weights(model: Path) -> tuple[int, int]:
    """(weights of the decoder layers, weights of the LM head) from the model's config.json."""
    cfg = json.loads((model / "config.json").read_text())
    hidden, inter = cfg["hidden_size"], cfg["intermediate_size"]
    head_dim = cfg.get("head_dim") or hidden // cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads", cfg["num_attention_heads"]) * head_dim
    per_layer = 2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * inter  # q, o, k, v, MLP
    return cfg["num_hidden_layers"] * per_layer, cfg["vocab_size"] * hidden


def gflops(stats: dict, model: Path) -> float:
    """GFLOP/s over the tokens the engine computed (cached prompt tokens are not)."""
    layers, head = weights(model)
    computed = stats["prompt_tokens"] - stats["prompt_tokens_cached"]
    flops = 2 * layers * (computed + stats["tokens"]) + 2 * head * stats["tokens"]
    return flops / stats["seconds"] / 1e9


def _run(backend: str, model: Path, prompts: list[dict], work: Path, max_tokens: int = 96,
         **engine) -> dict:
    """One worker run, greedy, all prompts in one chunk; ``engine``: GenerationConfig fields."""
    work.mkdir(parents=True)
    (work / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    gen = dataclasses.replace(GenerationConfig(), temperature=0.0, top_p=1.0, max_tokens=max_tokens,
                              backend=backend, chunk_size=len(prompts), **engine)
    (work / "spec.json").write_text(generation_spec(gen, load_template(DEFAULT_TEMPLATE), model, work).to_json())
    out = subprocess.run([str(LLM_PYTHON), str(WORKER), "generate", "--spec", str(work / "spec.json")],
                         capture_output=True, text=True, env=worker_env(), check=True)
    return json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    defaults = GenerationConfig()
    parser.add_argument("--prompts", type=int, default=defaults.chunk_size)
    parser.add_argument("--max-num-seqs", type=int, default=defaults.max_num_seqs)
    parser.add_argument("--max-num-batched-tokens", type=int,
                        default=defaults.max_num_batched_tokens)
    parser.add_argument("--max-tokens", type=int, default=96,
                        help="1 measures the prefill alone (a profile of where time goes)")
    parser.add_argument("--compile", action="store_true", help="enforce_eager=False (torch.compile)")
    parser.add_argument("--skip-transformers", action="store_true", help="vLLM settings sweeps")
    args = parser.parse_args()
    model = _model_folder(args.model)
    prompts = _prompts(args.prompts)
    dtype = "bf16" if "bfloat16" in _dtype() else "fp32"
    peak = matmul_peak_gflops(dtype)
    engine = {"max_num_seqs": args.max_num_seqs, "max_num_batched_tokens": args.max_num_batched_tokens,
              "compile": args.compile or defaults.compile}
    with tempfile.TemporaryDirectory() as tmp:
        vllm = _run("vllm", model, prompts, Path(tmp) / "vllm", args.max_tokens, **engine)
        hf = None if args.skip_transformers else _run("transformers", model, prompts,
                                                      Path(tmp) / "hf", args.max_tokens)
    achieved = gflops(vllm, model)
    computed = vllm["prompt_tokens"] - vllm["prompt_tokens_cached"]
    report("llm_generation_tokens_per_s", vllm["tokens_per_s"],
           hf["tokens_per_s"] if hf else float("nan"), "tokens/s", higher_is_better=True,
           target_ratio=5, figure_backend=vllm["backend"], dtype=vllm.get("dtype"),
           baseline_backend=hf["backend"] if hf else None, prompts=len(prompts),
           generated_tokens=vllm["tokens"], prompt_tokens=vllm["prompt_tokens"],
           prompt_tokens_cached=vllm["prompt_tokens_cached"],
           prompt_tokens_computed_per_s=round(computed / vllm["seconds"], 1),
           processed_tokens_per_s=round((computed + vllm["tokens"]) / vllm["seconds"], 1),
           seconds=vllm["seconds"], achieved_gflops=round(achieved, 1),
           matmul_peak_gflops=round(peak, 1), fraction_of_peak=round(achieved / peak, 3),
           baseline_gflops=round(gflops(hf, model), 1) if hf else None,
           prefix_cache_hit_rate=vllm.get("prefix_cache_hit_rate"),
           vllm_engine_start_s=vllm.get("engine_start_s"), **engine,
           kv_cache_gib=defaults.kv_cache_gib, cpu=cpu_model(),
           load_avg_1m=round(os.getloadavg()[0], 2))


def _dtype() -> str:
    """The dtype the worker resolves on this machine (the same rule, read from the CPU flags)."""
    from models.device import cpu_has_native_bf16

    return "bfloat16" if cpu_has_native_bf16() else "float32"


if __name__ == "__main__":
    main()
