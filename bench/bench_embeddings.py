"""Item text embedding: the configured runtime against torch fp32, the machine's peak beside it.

1. Throughput on the same texts in the same run: ``TextEmbedder.embed`` with the
   default config (bf16 weights where the CPU has native bf16) and a cold cache,
   against a bare fp32 ``SentenceTransformer.encode``. Also the smallest cosine
   between the two embeddings of any text (target >= 0.99), the achieved GFLOP/s and
   the 2048² matmul peak in the same dtype. Target: ratio >= 2.5.
2. The wrapper's overhead: ``TextEmbedder.embed`` against a bare ``encode`` of the
   same model and runtime (hashing, length-sorted chunks, the cache write).
3. A cached re-run (fresh embedder, full cache hit, the model is never loaded)
   against the uncached run (fresh embedder: model load + encode + cache write).
4. With ``--whole-catalog``: every title of the Food-Kitchen release (36k), encoded
   from a cold cache. Target: under 60 s on 2 idle cores.

Texts are the release's real titles when ``--release`` exists (the shared data),
otherwise synthetic product strings.

    .venv/bin/python -m bench.bench_embeddings [--n 2000] [--whole-catalog]
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.harness import cpu_model, matmul_peak_gflops, report
from models.data.synthetic import MODIFIERS, THEMES
from models.encoders.embedding_config import EmbeddingConfig
from models.encoders.text_embedding import TextEmbedder, load_sentence_transformer, resolve_runtime

RELEASE = Path(__file__).resolve().parents[2] / "shared" / "data" / "llmcdsr-food-kitchen"


def product_texts(n: int, seed: int = 0) -> list[str]:
    """Distinct "title | category | brand" strings shaped like the demo catalog's."""
    rng = np.random.default_rng(seed)
    themes = list(THEMES.values())
    out = []
    for i in range(n):
        words, grocery, kitchen = themes[rng.integers(len(themes))]
        nouns, category = (grocery, "Grocery") if i % 2 else (kitchen, "Home & Kitchen")
        title = (f"{words[rng.integers(len(words))]} {nouns[rng.integers(len(nouns))]}, "
                 f"{MODIFIERS[rng.integers(len(MODIFIERS))]} {rng.integers(1, 100)} oz #{i}")
        out.append(f"{title} | {category} | {words[rng.integers(len(words))]} Pantry")
    return out


def release_texts(release: Path) -> list[str]:
    """Every item text of the release, both domains, in catalog order."""
    from models.data.llmcdsr import import_release

    return import_release(release).item_catalog["text"].to_list()


def flops_per_text(model, texts: list[str], batch_size: int) -> float:
    """Dense-layer FLOPs per text as encoded: 2 x non-embedding weights x padded tokens.

    Batches hold texts of similar length (sorted, as ``TextEmbedder`` sorts them), so
    padding is what the model really computes. Attention scores are left out: at
    titles' 20 to 40 tokens they are under 5% of the dense layers.
    """
    weights = sum(p.numel() for name, p in model.named_parameters()
                  if p.dim() == 2 and "embeddings" not in name)
    ordered = sorted(texts, key=len, reverse=True)
    tokens = 0
    for start in range(0, len(ordered), batch_size):
        lengths = [len(ids) for ids in model.tokenizer(ordered[start:start + batch_size],
                                                       truncation=True)["input_ids"]]
        tokens += max(lengths) * len(lengths)
    return 2.0 * weights * tokens / len(texts)


def bare_seconds(model, texts: list[str], cfg: EmbeddingConfig) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = model.encode(texts, batch_size=cfg.batch_size, convert_to_numpy=True,
                       normalize_embeddings=cfg.normalize, show_progress_bar=False)
    return time.perf_counter() - start, np.asarray(out, dtype=np.float32)


def ours_seconds(embedder: TextEmbedder, texts: list[str]) -> tuple[float, np.ndarray]:
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        out, _ = embedder.embed(texts, cache_root=Path(cache))
        return time.perf_counter() - start, out


def cached_rerun(cfg: EmbeddingConfig, texts: list[str]) -> None:
    """A rerun over the same texts against the first, uncached run: no model load, no encode."""
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        _, cold = TextEmbedder(cfg).embed(texts, cache_root=Path(cache))
        uncached = time.perf_counter() - start
        start = time.perf_counter()
        warm_embedder = TextEmbedder(cfg)
        _, warm = warm_embedder.embed(texts, cache_root=Path(cache))
        cached = time.perf_counter() - start
    assert warm.encoded == 0 and warm_embedder._model is None and cold.encoded == len(set(texts))
    report("embedding_cached_rerun", cached, uncached, "s", n_texts=len(texts),
           model_load_s=round(cold.load_seconds, 2),
           baseline_desc="uncached run: fresh embedder, model load + encode + cache write")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--release", type=Path, default=RELEASE)
    parser.add_argument("--whole-catalog", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(os.cpu_count() or 1)
    real = args.release.is_dir()
    catalog = release_texts(args.release) if real else product_texts(max(args.n, 40_000))
    texts = catalog[:: max(len(catalog) // args.n, 1)][:args.n]  # spread over both domains

    cfg, ref_cfg = EmbeddingConfig(device="cpu"), EmbeddingConfig(device="cpu", precision="fp32")
    probe = TextEmbedder(cfg)
    runtime = probe.runtime
    fast = load_sentence_transformer(probe.folder, cfg, runtime)
    ref = load_sentence_transformer(probe.folder, ref_cfg, resolve_runtime(ref_cfg))
    for model in (fast, ref):
        model.encode(texts[:64], batch_size=cfg.batch_size)  # warm-up

    fp32, ours, bare = [], [], []
    for _ in range(args.repeat):  # interleaved, so machine load hits all alike
        seconds, ref_vectors = bare_seconds(ref, texts, ref_cfg)
        fp32.append(seconds)
        seconds, vectors = ours_seconds(TextEmbedder(cfg, model=fast, identity=probe.identity),
                                        texts)
        ours.append(seconds)
        bare.append(bare_seconds(fast, texts, cfg)[0])
    cosine = np.sum(vectors * ref_vectors, axis=1)  # (n,) both unit length
    flops = flops_per_text(ref, texts, cfg.batch_size)
    peak = matmul_peak_gflops(runtime.dtype if runtime.dtype in ("fp32", "bf16") else "fp32")
    achieved = args.n / min(ours) * flops / 1e9
    report("embedding_throughput", args.n / min(ours), args.n / min(fp32), "texts/s",
           higher_is_better=True, n_texts=args.n, texts="release" if real else "synthetic",
           backend=runtime.backend, dtype=runtime.dtype, backend_fallback=runtime.fallback,
           min_cosine_to_fp32=round(float(cosine.min()), 5), target_ratio=2.5,
           achieved_gflops=round(achieved, 1), matmul_peak_gflops=round(peak, 1),
           fraction_of_peak=round(achieved / peak, 3), cpu=cpu_model(),
           threads=torch.get_num_threads(), load_avg_1m=round(os.getloadavg()[0], 2),
           baseline_desc="bare SentenceTransformer.encode in torch fp32, same texts and batch")
    report("embedding_wrapper", args.n / min(ours), args.n / min(bare), "texts/s",
           higher_is_better=True, overhead_pct=round(100 * (min(ours) / min(bare) - 1), 1),
           baseline_desc="bare encode of the same model and runtime")

    cached_rerun(cfg, texts)

    if args.whole_catalog:
        seconds, _ = ours_seconds(TextEmbedder(cfg, model=fast, identity=probe.identity), catalog)
        report("embedding_whole_catalog", seconds, 60.0, "s", n_texts=len(catalog),
               texts="release" if real else "synthetic", dtype=runtime.dtype,
               load_avg_1m=round(os.getloadavg()[0], 2), baseline_desc="the 60 s target")


if __name__ == "__main__":
    main()
