"""What the pseudo-generation asset asks of the LLM worker: one typed spec, and the chunk files.

The asset writes a :class:`GenerationSpec` as ``spec.json`` next to ``prompts.jsonl``;
the worker (``workers/llm.py``, in its own environment) reads it back. Every field is
required and no field has a default: the asset fills each one from ``GenerationConfig``,
the only owner of the settings, so a setting never has two defaults that can drift.
Reading is strict, so a spec written by another revision fails with the key named
instead of running with a silently different setting.

Standard library only: the worker's environment has nothing else of this project.
"""

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path


class SpecError(ValueError):
    """A ``spec.json`` that is not exactly a :class:`GenerationSpec`; the message names the keys."""


@dataclass(frozen=True)
class GenerationSpec:
    """One generation run of the LLM worker; field order is the order of ``spec.json``."""

    model_path: str  # Hugging Face model folder
    seed: int  # engine seed (vLLM), per-chunk seed base (transformers)
    output_format: str  # "list" (numbered list) | "json" (structured output)
    n_items: int  # titles asked for per prompt
    max_title_chars: int  # longest title the JSON schema allows
    temperature: float
    top_p: float
    max_tokens: int
    backend: str  # auto | vllm | transformers
    dtype: str  # auto | bfloat16 | float16 | float32
    max_model_len: int
    chunk_size: int  # prompts per chunk file (and per engine batch)
    max_num_seqs: int  # vLLM scheduler
    max_num_batched_tokens: int  # vLLM scheduler
    kv_cache_gib: int  # VLLM_CPU_KVCACHE_SPACE
    enforce_eager: bool  # vLLM without torch.compile
    chunk_dir: str  # where chunk-NNNNN.jsonl files are written
    prompts_path: str  # prompts.jsonl: one {"id", "messages"} per line

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "GenerationSpec":
        """Parse ``spec.json``; an unknown or a missing key raises :class:`SpecError` naming it."""
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise SpecError(f"generation spec is a JSON {type(raw).__name__}, not an object")
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(raw) - set(names))
        missing = [name for name in names if name not in raw]
        if unknown or missing:
            raise SpecError(f"generation spec: unknown keys {unknown}, missing keys {missing}")
        return cls(**raw)

    # ------------------------------------------------------------ the files of a run

    def read_prompts(self) -> list[dict]:
        with open(self.prompts_path) as fh:
            return [json.loads(line) for line in fh]

    def chunks(self, prompts: list[dict]) -> list[list[dict]]:
        """The prompts in chunks of ``chunk_size``; chunk i is written to :meth:`chunk_path` (i)."""
        return [prompts[i:i + self.chunk_size] for i in range(0, len(prompts), self.chunk_size)]

    def pending(self) -> tuple[list[list[dict]], list[int]]:
        """The prompts in chunks, and the indices of the chunks not written yet (creates chunk_dir).

        A killed run resumes here: the worker and its test stand-in write only these.
        """
        Path(self.chunk_dir).mkdir(parents=True, exist_ok=True)
        chunks = self.chunks(self.read_prompts())
        return chunks, [i for i in range(len(chunks)) if not self.chunk_path(i).exists()]

    def chunk_path(self, index: int) -> Path:
        return Path(self.chunk_dir) / f"chunk-{index:05d}.jsonl"

    def write_chunk(self, index: int, outputs: list[tuple[str, str]]) -> None:
        """Write chunk ``index``'s (id, output) pairs atomically: a killed run leaves no partial chunk."""
        path = self.chunk_path(index)
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text("".join(json.dumps({"id": i, "output": o}) + "\n" for i, o in outputs))
        os.replace(tmp, path)

    def read_outputs(self) -> dict[str, str]:
        """Prompt id -> generated text, from every chunk written so far."""
        outputs = {}
        for file in sorted(Path(self.chunk_dir).glob("chunk-*.jsonl")):
            for line in file.read_text().splitlines():
                row = json.loads(line)
                outputs[row["id"]] = row["output"]
        return outputs
