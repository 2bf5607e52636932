"""FAISS exact search against torch brute force (matmul + topk) on the same vectors.

Catalog and queries default to the shape of grounding on a large catalog
(100k items x 384 dims, 10k queries, top-10). Identical ids are asserted.

    .venv/bin/python -m bench.bench_faiss [--items 100000] [--queries 10000] [--dim 384]
"""

import argparse

import numpy as np
import torch

from bench.harness import report, timed
from models.pseudo.retrieval import IndexConfig, build_index, normalize, search


def torch_topk(items: np.ndarray, queries: np.ndarray, k: int, batch: int = 2048) -> np.ndarray:
    pool = torch.from_numpy(normalize(items))
    out = []
    for start in range(0, len(queries), batch):
        q = torch.from_numpy(normalize(queries[start:start + batch]))
        out.append(torch.topk(q @ pool.T, k, dim=1).indices)  # (B, k)
    return torch.cat(out).numpy()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    items = rng.normal(size=(args.items, args.dim)).astype(np.float32)
    queries = rng.normal(size=(args.queries, args.dim)).astype(np.float32)

    def run_faiss():
        return search(build_index(items, IndexConfig(kind="flat", use_gpu=False)), queries, args.k)[1]

    faiss_s, faiss_ids = timed(run_faiss)
    torch_s, torch_ids = timed(lambda: torch_topk(items, queries, args.k))
    agree = float(np.mean([set(a) == set(b) for a, b in zip(faiss_ids, torch_ids, strict=True)]))
    report("faiss_flat_vs_torch_topk", faiss_s, torch_s, "s", items=args.items, queries=args.queries,
           dim=args.dim, k=args.k, identical_id_sets=agree)


if __name__ == "__main__":
    main()
