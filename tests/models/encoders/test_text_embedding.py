import hashlib
import logging
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from models.encoders import text_embedding
from models.encoders.embedding_cache import EmbeddingCache
from models.encoders.embedding_config import EmbeddingConfig, EmbeddingError
from models.encoders.text_embedding import (
    Runtime,
    TextEmbedder,
    domain_items,
    has_content,
    item_texts,
    model_identity,
    resolve_model,
    resolve_runtime,
)

DIM = 6


class CountingModel:
    """A deterministic stand-in for SentenceTransformer that counts what it encodes."""

    def __init__(self):
        self.encoded: list[str] = []

    def encode(self, sentences, **kwargs):
        self.encoded.extend(sentences)
        rows = [np.frombuffer(hashlib.sha256(s.encode()).digest()[:DIM], dtype=np.uint8)
                for s in sentences]
        return np.asarray(rows, dtype=np.float32).reshape(len(sentences), DIM)


def fake_embedder(**cfg) -> tuple[TextEmbedder, CountingModel]:
    """Unnormalized unless asked, so outputs can be compared with the fake's raw rows."""
    cfg.setdefault("normalize", False)
    model = CountingModel()
    return TextEmbedder(EmbeddingConfig(**cfg), model=model, identity="fake-1"), model


TEXTS = ["Tuscan Pesto | Grocery | Roma", "Kyoto Green Tea", "", "Tuscan Pesto | Grocery | Roma",
         "Rice Cooker | Kitchen | Kyoto Home"]


def test_cache_is_hit_on_second_run_and_only_new_texts_are_encoded(tmp_path):
    embedder, model = fake_embedder()
    first, stats = embedder.embed(TEXTS, cache_root=tmp_path)
    assert stats.encoded == 4 and stats.cache_misses == 5 and stats.cache_hits == 0
    assert len(model.encoded) == 4  # the duplicate text is encoded once
    np.testing.assert_array_equal(first[0], first[3])

    again, model2 = fake_embedder()
    second, stats2 = again.embed(TEXTS, cache_root=tmp_path)
    assert model2.encoded == [] and stats2.encoded == 0 and stats2.cache_hits == 5
    np.testing.assert_array_equal(first, second)

    third, stats3 = again.embed([*TEXTS, "Brand New Wok"], cache_root=tmp_path)
    assert model2.encoded == ["Brand New Wok"] and stats3.cache_hits == 5
    np.testing.assert_array_equal(third[:5], first)


class FailingModel(CountingModel):
    def __init__(self, fail_after: int):
        super().__init__()
        self.fail_after = fail_after

    def encode(self, sentences, **kwargs):
        if len(self.encoded) + len(sentences) > self.fail_after:
            raise RuntimeError("killed")
        return super().encode(sentences, **kwargs)


def test_killed_run_resumes_from_the_blocks_it_cached(tmp_path):
    texts = [f"title {i}" for i in range(300)]  # batch_size 1: blocks of 128 texts
    crashing = TextEmbedder(EmbeddingConfig(batch_size=1, normalize=False), model=FailingModel(200), identity="f")
    with pytest.raises(RuntimeError, match="killed"):
        crashing.embed(texts, cache_root=tmp_path)
    model = CountingModel()
    out, stats = TextEmbedder(EmbeddingConfig(batch_size=1, normalize=False), model=model, identity="f").embed(
        texts, cache_root=tmp_path)
    assert stats.cache_hits == 128 and stats.encoded == 172 == len(model.encoded)
    np.testing.assert_array_equal(out, CountingModel().encode(texts))


def test_cache_is_separate_per_model_identity(tmp_path):
    embedder, _ = fake_embedder()
    embedder.embed(TEXTS, cache_root=tmp_path)
    other = TextEmbedder(EmbeddingConfig(), model=CountingModel(), identity="fake-2")
    _, stats = other.embed(TEXTS, cache_root=tmp_path)
    assert stats.cache_hits == 0 and stats.encoded == 4


def test_cache_writes_are_atomic_and_compacted(tmp_path):
    embedder, _ = fake_embedder()
    for i in range(12):
        embedder.embed([f"text {i}"], cache_root=tmp_path)
    folder = tmp_path / "fake-1"
    assert not list(folder.glob(".*"))  # no temporary files left behind
    assert len(list(folder.glob("*.parquet"))) <= 9
    assert EmbeddingCache(folder).read().height == 12
    _, stats = fake_embedder()[0].embed([f"text {i}" for i in range(12)], cache_root=tmp_path)
    assert stats.cache_hits == 12


def test_corrupt_cache_shard_is_named(tmp_path):
    embedder, _ = fake_embedder()
    embedder.embed(TEXTS, cache_root=tmp_path)
    shard = next((tmp_path / "fake-1").glob("*.parquet"))
    shard.write_bytes(b"not parquet")
    with pytest.raises(EmbeddingError, match=f"embedding cache shard {shard} is unreadable"):
        embedder.embed(TEXTS, cache_root=tmp_path)


def test_without_cache_root_everything_is_encoded():
    embedder, model = fake_embedder()
    out, stats = embedder.embed(TEXTS)
    assert out.shape == (5, DIM) and stats.encoded == 4 and len(model.encoded) == 4


def test_encode_returns_input_order_across_chunks():
    embedder, _ = fake_embedder(batch_size=1)  # chunks of 16 texts
    texts = [f"item {'x' * (i % 7)} {i}" for i in range(40)]
    out = embedder.encode(texts)
    expected = CountingModel().encode(texts)
    np.testing.assert_array_equal(out, expected)


def test_progress_is_reported_and_ends_at_total():
    embedder, _ = fake_embedder(batch_size=1)
    reports = []
    embedder.embed([f"t{i}" for i in range(50)], progress=reports.append, progress_every_s=0.0)
    assert reports[-1].done == reports[-1].total == 50
    assert all(r.items_per_s > 0 for r in reports)
    assert [r.done for r in reports] == sorted(r.done for r in reports)


def test_empty_texts_get_fallback_or_the_fixed_empty_embedding(tmp_path):
    texts = item_texts(["Tea | Grocery | Kyoto", " |  | ", None, ""], ["Tea", "Kettle", None, ""])
    assert texts == ["Tea | Grocery | Kyoto", "Kettle", "", ""]
    embedder, _ = fake_embedder()
    out, stats = embedder.embed(texts, cache_root=tmp_path)
    assert stats.empty_texts == 2
    np.testing.assert_array_equal(out[2], out[3])
    assert not has_content(" | | ") and has_content("a |")


def test_normalize_makes_unit_rows_in_fp32(tmp_path):
    embedder, _ = fake_embedder(normalize=True)
    out, _ = embedder.embed(["a", "b", "c"], cache_root=tmp_path)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)


def test_missing_model_folder_is_named(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(EmbeddingError, match=str(missing)):
        TextEmbedder(EmbeddingConfig(model=str(missing)))


def test_unknown_model_package_is_named():
    with pytest.raises(EmbeddingError, match="'no-such-embedder' is neither an existing folder"):
        resolve_model("no-such-embedder")


def test_folder_that_is_not_a_model_is_named(tmp_path):
    (tmp_path / "junk.txt").write_text("x")
    embedder = TextEmbedder(EmbeddingConfig(model=str(tmp_path), device="cpu"))
    with pytest.raises(EmbeddingError, match=f"cannot load text embedding model from {tmp_path}"):
        embedder.embed(["a"])


def test_identity_changes_with_options_runtime_and_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    fp32 = Runtime("torch", "fp32")
    a = model_identity(str(tmp_path), tmp_path, EmbeddingConfig(), fp32)
    assert a.startswith(tmp_path.name + "-")
    assert model_identity(str(tmp_path), tmp_path, EmbeddingConfig(normalize=False), fp32) != a
    assert model_identity(str(tmp_path), tmp_path, EmbeddingConfig(), Runtime("torch", "bf16")) != a
    assert model_identity(str(tmp_path), tmp_path, EmbeddingConfig(), Runtime("onnx", "fp32")) != a
    (tmp_path / "config.json").write_text('{"changed": 1}')
    assert model_identity(str(tmp_path), tmp_path, EmbeddingConfig(), fp32) != a


def test_precision_picks_the_dtype_and_only_the_dtype_changes_the_identity():
    bf16, fp32 = (TextEmbedder(EmbeddingConfig(device="cpu", precision=p)) for p in ("bf16", "fp32"))
    assert (bf16.runtime, fp32.runtime) == (Runtime("torch", "bf16"), Runtime("torch", "fp32"))
    assert bf16.identity != fp32.identity
    auto = TextEmbedder(EmbeddingConfig(device="cpu"))
    native = text_embedding.autocast_dtype("auto", text_embedding.resolve_device("cpu")) is not None
    assert auto.identity == (bf16 if native else fp32).identity


def test_unloadable_backend_falls_back_to_torch_with_a_warning(monkeypatch, caplog):
    """The import probe fails (a module that does not exist stands for a missing optimum)."""
    monkeypatch.setitem(text_embedding._BACKEND_MODULES, "onnx", "no_such_optimum.onnxruntime")
    cfg = EmbeddingConfig(device="cpu", backend="onnx", precision="fp32")
    with caplog.at_level(logging.WARNING, logger="models.encoders.text_embedding"):
        runtime = resolve_runtime(cfg)
    assert (runtime.backend, runtime.dtype) == ("torch", "fp32")
    assert "embedding.backend='onnx' cannot load" in runtime.fallback
    assert "no_such_optimum" in caplog.text
    torch_cfg = EmbeddingConfig(device="cpu", precision="fp32")
    assert TextEmbedder(cfg).identity == TextEmbedder(torch_cfg).identity  # torch's own vectors


def test_backend_that_fails_at_load_time_embeds_into_the_torch_cache(monkeypatch, tmp_path):
    """The probe passes but loading fails: the vectors land under torch's identity, not onnx's."""
    monkeypatch.setitem(text_embedding._BACKEND_MODULES, "onnx", "json")  # an import that works
    real_load = text_embedding.load_sentence_transformer

    def load(folder, cfg, runtime):
        if runtime.backend == "onnx":
            raise EmbeddingError("no model.onnx in the folder (a stand-in load failure)")
        return CountingModel()

    monkeypatch.setattr(text_embedding, "load_sentence_transformer", load)
    cfg = EmbeddingConfig(device="cpu", backend="onnx", precision="fp32")
    embedder = TextEmbedder(cfg)
    onnx_identity = embedder.identity
    assert embedder.runtime.backend == "onnx"
    out, stats = embedder.embed(["a", "b"], cache_root=tmp_path)
    torch_identity = TextEmbedder(EmbeddingConfig(device="cpu", precision="fp32")).identity
    assert embedder.runtime.backend == "torch" and "stand-in load failure" in embedder.runtime.fallback
    assert embedder.identity == torch_identity != onnx_identity
    assert [p.name for p in tmp_path.iterdir()] == [torch_identity] and stats.encoded == 2
    assert real_load is not load


def test_bf16_vectors_stay_within_cosine_0_99_of_fp32_on_every_text():
    """Real MiniLM, real titles when the shared data is present (issue: cosine >= 0.99)."""
    from bench.bench_embeddings import RELEASE, product_texts, release_texts

    texts = release_texts(RELEASE)[::120] if Path(RELEASE).is_dir() else product_texts(300)
    vectors = {}
    for precision in ("bf16", "fp32"):
        vectors[precision], _ = TextEmbedder(EmbeddingConfig(device="cpu", precision=precision)
                                             ).embed(texts)
    cosine = np.sum(vectors["bf16"] * vectors["fp32"], axis=1)
    assert len(texts) >= 300 and cosine.min() >= 0.99, (len(texts), cosine.min())


def catalog(rows):
    return pl.DataFrame(rows, orient="row", schema={"item": pl.String, "domain": pl.String,
                                                    "index": pl.Int32, "title": pl.String,
                                                    "text": pl.String})


def test_domain_items_orders_by_index_and_checks_contiguity():
    cat = catalog([("b1", "B", 0, "x", "x"), ("a2", "A", 1, "y", "y"), ("a1", "A", 0, "z", "z")])
    assert domain_items(cat, "A")["item"].to_list() == ["a1", "a2"]
    gap = catalog([("a1", "A", 0, "z", "z"), ("a3", "A", 2, "y", "y")])
    with pytest.raises(EmbeddingError, match="domain A: indices are not exactly 0..1"):
        domain_items(gap, "A")
    with pytest.raises(EmbeddingError, match="no items of domain B"):
        domain_items(gap, "B")


def test_real_minilm_embeds_offline_and_second_run_loads_no_model(tmp_path):
    cfg = EmbeddingConfig(device="cpu")
    embedder = TextEmbedder(cfg)
    texts = ["Tuscan Pesto Sauce | Grocery | Roma Pantry", "Carbon Steel Wok | Kitchen", ""]
    out, stats = embedder.embed(texts, cache_root=tmp_path)
    assert out.shape == (3, 384) and out.dtype == np.float32 and stats.encoded == 3
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    fresh = TextEmbedder(cfg)
    again, stats2 = fresh.embed(texts, cache_root=tmp_path)
    assert stats2.encoded == 0 and stats2.cache_hits == 3
    assert fresh._model is None  # a full cache hit never loads the model
    np.testing.assert_array_equal(out, again)
