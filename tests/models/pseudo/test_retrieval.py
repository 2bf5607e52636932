import numpy as np
import pytest

from models.pseudo.retrieval import IndexConfig, brute_force_topk, build_index, recall_at_k, search


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(2000, 32)).astype(np.float32), rng.normal(size=(100, 32)).astype(np.float32)


def test_exact_index_equals_brute_force(data):
    items, queries = data
    scores, ids = search(build_index(items, IndexConfig(kind="flat", use_gpu=False)), queries, 10)
    ref_scores, ref_ids = brute_force_topk(items, queries, 10)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_report_high_recall(data, kind):
    items, queries = data
    _, ids = search(build_index(items, IndexConfig(kind=kind, nprobe=64, use_gpu=False)), queries, 10)
    recall = recall_at_k(ids, brute_force_topk(items, queries, 10)[1])
    assert 0.8 <= recall <= 1.0


def test_k_larger_than_catalog_and_bad_kind():
    items = np.eye(3, dtype=np.float32)
    _, ids = search(build_index(items, IndexConfig(use_gpu=False)), items, 10)
    assert ids.shape == (3, 3) and ids[:, 0].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="index kind='lsh'"):
        IndexConfig(kind="lsh")
