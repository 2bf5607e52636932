"""A GenerationSpec with its prompts on disk, as the pseudo asset leaves them for the worker."""

import json
from pathlib import Path

from workers.spec import GenerationSpec


def make_spec(work: Path, n_prompts: int = 5, chunk_size: int = 2, n_items: int = 3) -> GenerationSpec:
    """A spec under ``work`` with ``n_prompts`` prompts written to its prompts.jsonl."""
    spec = GenerationSpec(
        model_path=str(work / "model"), seed=0, output_format="list", n_items=n_items,
        max_title_chars=80, temperature=0.0, top_p=1.0, max_tokens=16, backend="transformers",
        dtype="auto", max_model_len=2048, chunk_size=chunk_size, max_num_seqs=128,
        max_num_batched_tokens=8192, kv_cache_gib=2, enforce_eager=True,
        chunk_dir=str(work / "chunks"), prompts_path=str(work / "prompts.jsonl"))
    prompts = [{"id": f"p{i}", "messages": [{"role": "user", "content": f"prompt {i}"}]}
               for i in range(n_prompts)]
    (work / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    (work / "spec.json").write_text(spec.to_json())
    return spec
