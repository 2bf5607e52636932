"""Item text embedding: our cached path against a bare ``SentenceTransformer.encode``.

1. Throughput on the same texts in the same run: ``TextEmbedder.embed`` with a cold
   cache (hashing, length-sorted chunks, the cache write included) against
   ``model.encode`` on the list as is. Target: overhead at most 10 %.
2. A cached re-run (fresh embedder, full cache hit, the model is never loaded)
   against the uncached run (fresh embedder: model load + encode + cache write).

    .venv/bin/python -m bench.bench_embeddings [--n 4000]
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.harness import report
from models.synthetic import MODIFIERS, THEMES
from models.text_embedding import EmbeddingConfig, TextEmbedder, load_sentence_transformer


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cfg = EmbeddingConfig(device="cpu")
    texts = product_texts(args.n)
    probe = TextEmbedder(cfg)
    model = load_sentence_transformer(probe.folder, cfg)
    model.encode(texts[:64], batch_size=cfg.batch_size)  # warm-up

    bare, ours = [], []
    for _ in range(args.repeat):  # interleaved, so machine load hits both alike
        start = time.perf_counter()
        model.encode(texts, batch_size=cfg.batch_size, convert_to_numpy=True,
                     normalize_embeddings=cfg.normalize, show_progress_bar=False)
        bare.append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as cache:
            embedder = TextEmbedder(cfg, model=model, identity=probe.identity)
            start = time.perf_counter()
            embedder.embed(texts, cache_root=Path(cache))
            ours.append(time.perf_counter() - start)
    fig, base = args.n / min(ours), args.n / min(bare)
    report("embedding_throughput", fig, base, "texts/s", higher_is_better=True, n_texts=args.n,
           overhead_pct=round(100 * (min(ours) / min(bare) - 1), 1), model=probe.identity,
           baseline_desc="bare SentenceTransformer.encode, same texts, same batch size")

    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        _, cold = TextEmbedder(cfg).embed(texts, cache_root=Path(cache))
        uncached = time.perf_counter() - start
        start = time.perf_counter()
        warm_embedder = TextEmbedder(cfg)
        _, warm = warm_embedder.embed(texts, cache_root=Path(cache))
        cached = time.perf_counter() - start
    assert warm.encoded == 0 and warm_embedder._model is None and cold.encoded == args.n
    report("embedding_cached_rerun", cached, uncached, "s", n_texts=args.n,
           model_load_s=round(cold.load_seconds, 2),
           baseline_desc="uncached run: fresh embedder, model load + encode + cache write")


if __name__ == "__main__":
    main()
