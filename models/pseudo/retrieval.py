"""Top-k cosine retrieval of real items with FAISS (paper equation 6).

Exact search (``IndexFlatIP`` on L2-normalized vectors) is the default and
returns exactly the brute-force top-k. IVF and HNSW are options for catalogs of
millions of items; their recall@k against exact search is measured on the
same queries and reported, so an approximate index never degrades silently.
faiss-gpu is used transparently when it is installed and CUDA is present.
"""

from dataclasses import dataclass

import faiss
import numpy as np

INDEX_KINDS = ("flat", "ivf", "hnsw")


@dataclass(frozen=True)
class IndexConfig:
    kind: str = "flat"  # flat (exact) | ivf | hnsw
    nlist: int = 256  # ivf: number of clusters (capped by catalog size)
    nprobe: int = 16  # ivf: clusters visited per query
    hnsw_m: int = 32  # hnsw: graph degree
    ef_search: int = 128  # hnsw: search breadth
    use_gpu: bool = True  # when faiss-gpu and a GPU are present

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise ValueError(f"index kind={self.kind!r}; allowed {list(INDEX_KINDS)}")
        for name in ("nlist", "nprobe", "hnsw_m", "ef_search"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), float32 contiguous."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def build_index(items: np.ndarray, cfg: IndexConfig = IndexConfig()) -> faiss.Index:
    """Inner-product index over normalized item vectors (N, D): cosine similarity."""
    vectors = normalize(items)
    n, dim = vectors.shape
    if cfg.kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif cfg.kind == "ivf":
        nlist = max(1, min(cfg.nlist, n // 39 or 1))  # faiss wants ~39 points per centroid
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.nprobe = min(cfg.nprobe, nlist)
    else:
        index = faiss.IndexHNSWFlat(dim, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = cfg.ef_search
    index.add(vectors)
    if cfg.use_gpu and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    return index


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids), each (Q, k), best first; ids are -1 where fewer than k items exist."""
    k = min(k, index.ntotal)
    return index.search(normalize(queries), k)


def brute_force_topk(items: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference top-k by a full similarity matrix (tests and benchmarks)."""
    sims = normalize(queries) @ normalize(items).T  # (Q, N)
    k = min(k, sims.shape[1])
    ids = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, ids, axis=1), ids


def recall_at_k(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean fraction of the exact top-k that the approximate search also returned."""
    hits = [len(set(a[a >= 0]) & set(e)) / max(1, len(e)) for a, e in zip(approx_ids, exact_ids, strict=True)]
    return float(np.mean(hits)) if hits else 1.0
