"""Resources for the work that leaves plain Python: the LLM worker and the sentence embedder.

Each is an abstract ``dg.ConfigurableResource`` with a real implementation and a named
test implementation, as dagster-io/dagster's ``project_fully_featured`` pairs
``HNAPIClient`` with ``HNSnapshotClient``: asset tests swap the resource instead of
patching. app/definitions.py builds the real ones from the dataset's YAML sections
(``from_config``), which stay the only owners of the settings.
"""

import dataclasses
import hashlib
import json
import os
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import dagster as dg
import numpy as np
from pydantic import PrivateAttr

from models.data.sources import SourceError
from models.encoders import text_embedding
from models.encoders.embedding_config import EmbeddingConfig
from models.encoders.text_embedding import EmbeddingStats, Progress, Runtime
from models.pseudo.requests import GenerationConfig
from pipeline import settings
from workers.spec import GenerationSpec

WORKER = settings.PROJECT_ROOT / "workers" / "llm.py"


def worker_env() -> dict[str, str]:
    """No network for the worker: models come from local folders only."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
            "PYTHONPATH": str(settings.PROJECT_ROOT)}


# ---------------------------------------------------------------- the LLM worker


class LLMLauncher(dg.ConfigurableResource, ABC):
    """Runs the LLM worker's two commands for an asset; each returns the worker's statistics."""

    @abstractmethod
    def convert(self, context: dg.AssetExecutionContext, package: str, out: Path) -> dict:
        """Turn the one GGUF file that ``package`` ships into a Hugging Face folder ``out``."""

    @abstractmethod
    def generate(self, context: dg.AssetExecutionContext, spec_path: Path) -> dict:
        """Write the chunks of the :class:`GenerationSpec` at ``spec_path`` that do not exist yet.

        Returns the statistics message of ``workers/llm.py`` (``backend`` None when every
        chunk was already there).
        """


class PipesLLMLauncher(LLMLauncher):
    """``workers/llm.py`` in the LLM environment, through Dagster Pipes, with no network.

    Pipes carries the worker's logs into the run and its statistics back; the worker's
    own environment keeps vLLM's pinned packages out of this one.
    """

    llm_python: str | None  # interpreter (generation.llm_python); None: .venv-llm's when it exists, else this one

    @classmethod
    def from_config(cls, gen: GenerationConfig) -> Self:
        return cls(llm_python=gen.llm_python)

    def python(self) -> str:
        if self.llm_python:
            if not Path(self.llm_python).exists():
                raise SourceError(f"llm_python {self.llm_python} does not exist")
            return self.llm_python
        venv = settings.PROJECT_ROOT / ".venv-llm" / "bin" / "python"
        return str(venv) if venv.exists() else sys.executable

    def command(self, *args: str) -> list[str]:
        return [self.python(), str(WORKER), *args]

    def convert(self, context: dg.AssetExecutionContext, package: str, out: Path) -> dict:
        return self._run(context, "convert", "--package", package, "--out", str(out))

    def generate(self, context: dg.AssetExecutionContext, spec_path: Path) -> dict:
        return self._run(context, "generate", "--spec", str(spec_path))

    def _run(self, context: dg.AssetExecutionContext, *args: str) -> dict:
        client = dg.PipesSubprocessClient(cwd=str(settings.PROJECT_ROOT))
        invocation = client.run(command=self.command(*args), context=context, env=worker_env())
        return next((m for m in invocation.get_custom_messages() if isinstance(m, dict)), {})


def canned_reply(prompt_id: str, n_items: int) -> str:
    """A numbered list of ``n_items`` titles that name the prompt: distinct and parseable."""
    return "\n".join(f"{k}. Replayed pick {k} for {prompt_id}" for k in range(1, n_items + 1))


class ReplayLLMLauncher(LLMLauncher):
    """Test implementation: no LLM runs; recorded or canned answers are written as chunks.

    Like ``HNSnapshotClient``, it stands in for the real thing in tests: the chunk files,
    their resume and the statistics message are those of ``workers/llm.py``, so asset
    tests of ``pseudo_generations`` run in seconds without vLLM or a model.
    ``convert`` writes a folder with a placeholder config.json and no weights.
    """

    outputs_path: str | None = None  # JSONL of {"id", "output"} per prompt; None: canned_reply

    def convert(self, context: dg.AssetExecutionContext, package: str, out: Path) -> dict:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps({"replay_of": package}))
        return {}

    def generate(self, context: dg.AssetExecutionContext, spec_path: Path) -> dict:
        spec = GenerationSpec.from_json(spec_path.read_text())
        reply = self._replies(spec.n_items)
        chunks, todo = spec.pending()
        for i in todo:
            spec.write_chunk(i, [(p["id"], reply(p["id"])) for p in chunks[i]])
        return {"backend": "replay" if todo else None, "tokens": 0, "prompt_tokens": 0,
                "prompt_tokens_cached": 0, "seconds": 0.0, "chunks_resumed": len(chunks) - len(todo),
                "chunks_generated": len(todo), "prefix_cache_hit_rate": None, "tokens_per_s": None}

    def _replies(self, n_items: int) -> Callable[[str], str]:
        if self.outputs_path is None:
            return lambda prompt_id: canned_reply(prompt_id, n_items)
        recorded = {}
        for line in Path(self.outputs_path).read_text().splitlines():
            row = json.loads(line)
            recorded[row["id"]] = row["output"]

        def reply(prompt_id: str) -> str:
            if prompt_id not in recorded:
                raise LookupError(f"{self.outputs_path} holds no output for prompt {prompt_id!r}")
            return recorded[prompt_id]

        return reply


# ---------------------------------------------------------------- the text embedder


class TextEmbedderResource(dg.ConfigurableResource, ABC):
    """Texts to vectors through the embedding cache (models/encoders/text_embedding.py).

    The fields are the YAML ``embedding:`` section (:class:`EmbeddingConfig`), copied in
    by :meth:`from_config` only: they have no defaults here, so the YAML stays their one
    owner. The embedder opens on first use, inside the asset, so a model that cannot be
    found fails that asset with its path named.
    """

    model: str
    batch_size: int
    device: str
    normalize: bool
    max_seq_length: int | None
    backend: str
    precision: str
    _embedder: Any = PrivateAttr(default=None)  # text_embedding.TextEmbedder, once opened

    @classmethod
    def from_config(cls, cfg: EmbeddingConfig, **fields: Any) -> Self:
        return cls(**dataclasses.asdict(cfg), **fields)

    def config(self) -> EmbeddingConfig:
        return EmbeddingConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(EmbeddingConfig)})

    @abstractmethod
    def _open(self) -> text_embedding.TextEmbedder:
        """The embedder behind this resource."""

    @property
    def _opened(self) -> text_embedding.TextEmbedder:
        if self._embedder is None:
            self._embedder = self._open()
        return self._embedder

    @property
    def identity(self) -> str:
        """Model, runtime and vector options as one name: the cache folder and the code version."""
        return self._opened.identity

    @property
    def runtime(self) -> Runtime:
        """The backend and dtype that encode (after any fallback)."""
        return self._opened.runtime

    def embed(self, texts: Sequence[str], cache_root: Path | None = None,
              progress: Callable[[Progress], None] | None = None,
              progress_every_s: float = 10.0) -> tuple[np.ndarray, EmbeddingStats]:
        """(N, E) float32 vectors of ``texts`` in order (unit length when ``normalize``), and the cost.

        With ``cache_root``, vectors are read from and added to ``<cache_root>/<identity>/``.
        """
        return self._opened.embed(texts, cache_root=cache_root, progress=progress,
                                  progress_every_s=progress_every_s)


class SentenceTransformerEmbedder(TextEmbedderResource):
    """The configured sentence-transformers model (the packaged all-MiniLM-L6-v2 by default).

    Backend and precision are resolved on this machine, as the YAML asks.
    """

    def _open(self) -> text_embedding.TextEmbedder:
        return text_embedding.TextEmbedder(self.config())


class _HashedBagOfWords:
    """``Encodes`` by counting words into ``dim`` buckets chosen by a stable hash."""

    def __init__(self, dim: int):
        self.dim = dim

    def encode(self, sentences: list[str], **kwargs: Any) -> np.ndarray:
        out = np.zeros((len(sentences), self.dim), dtype=np.float32)  # (N, dim)
        for row, text in enumerate(sentences):
            for word in re.findall(r"\w+", text.lower()):
                bucket = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[row, bucket % self.dim] += 1.0
        return out


class HashingTextEmbedder(TextEmbedderResource):
    """Test implementation: a hashed bag of words stands in for the model, for fast asset tests.

    Deterministic across processes (blake2b, not Python's salted ``hash``); texts that
    share words get similar vectors. The cache, batching, normalisation and statistics
    are the real embedder's; ``model``, ``device``, ``backend`` and ``precision`` are unused.
    """

    dim: int = 32  # vector width

    def _open(self) -> text_embedding.TextEmbedder:
        identity = f"hashing-{self.dim}-normalize={self.normalize}"
        return text_embedding.TextEmbedder(self.config(), model=_HashedBagOfWords(self.dim), identity=identity)
