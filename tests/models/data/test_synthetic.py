"""The demo generator: real 2018 format, deterministic, validated, with measurable structure."""

import gzip
import hashlib
import json
from collections import Counter, defaultdict

import numpy as np
import pytest

from models.data.synthetic import MAX_REVIEWS, SyntheticConfig, generate

REVIEW_FIELDS = {"reviewerID", "asin", "overall", "unixReviewTime", "reviewTime", "reviewText",
                 "summary", "verified"}
META_FIELDS = {"asin", "title", "category", "brand", "description"}


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _lines(path):
    with gzip.open(path, "rt") as fh:
        return [json.loads(line) for line in fh]


def test_files_have_the_amazon_2018_layout_and_fields(tmp_path):
    cfg = SyntheticConfig(n_reviews=3000)
    generate(cfg, tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([f"{c}.json.gz" for c in cfg.domains] + [f"meta_{c}.json.gz" for c in cfg.domains])
    reviews = _lines(tmp_path / f"{cfg.domains[0]}.json.gz")
    assert set(reviews[0]) >= REVIEW_FIELDS and isinstance(reviews[0]["unixReviewTime"], int)
    meta = _lines(tmp_path / f"meta_{cfg.domains[1]}.json.gz")
    assert set(meta[0]) >= META_FIELDS and isinstance(meta[0]["category"], list)
    asins = {m["asin"] for m in meta}
    assert all(r["asin"] in asins for r in _lines(tmp_path / f"{cfg.domains[1]}.json.gz"))


def test_generator_is_deterministic_and_seed_sensitive(tmp_path):
    generate(SyntheticConfig(n_reviews=3000, seed=1), tmp_path / "a")
    generate(SyntheticConfig(n_reviews=3000, seed=1), tmp_path / "b")
    generate(SyntheticConfig(n_reviews=3000, seed=2), tmp_path / "c")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")


def test_scale_knob_controls_review_count(tmp_path):
    small = generate(SyntheticConfig(n_reviews=2000), tmp_path / "s").n_reviews_written
    large = generate(SyntheticConfig(n_reviews=40000), tmp_path / "l").n_reviews_written
    assert 1500 < small < 2800 and 32000 < large < 48000


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("n_reviews", 10, "[2000, 10000000]"),
    ("n_reviews", MAX_REVIEWS + 1, "[2000, 10000000]"),
    ("overlap_fraction", 0.0, "[0.01, 0.9]"),
    ("overlap_fraction", 1.5, "[0.01, 0.9]"),
])
def test_out_of_range_parameters_are_named(field, value, allowed):
    with pytest.raises(ValueError, match=rf"{field}=.*allowed \{allowed}"):
        SyntheticConfig(**{field: value})


def _dominant_themes(truth, reviews_by_domain, asin_index):
    """Per overlapping user: the most frequent item theme in each domain."""
    counts = defaultdict(lambda: [Counter(), Counter()])
    for d, reviews in enumerate(reviews_by_domain):
        for r in reviews:
            uid = int(r["reviewerID"][1:], 16)
            if truth.user_kind[uid] == 2:
                counts[uid][d][truth.item_theme[d][asin_index[d][r["asin"]]]] += 1
    return {u: [c.most_common(1)[0][0] if c else None for c in pair] for u, pair in counts.items()}


def test_planted_structure_cross_domain_tastes_agree_far_above_chance(tmp_path):
    cfg = SyntheticConfig(n_reviews=20000, overlap_fraction=0.3)
    truth = generate(cfg, tmp_path)
    reviews = [_lines(tmp_path / f"{c}.json.gz") for c in cfg.domains]
    asin_index = [{m["asin"]: i for i, m in enumerate(_lines(tmp_path / f"meta_{c}.json.gz"))}
                  for c in cfg.domains]
    dom = _dominant_themes(truth, reviews, asin_index)
    pairs = [(a, b) for a, b in dom.values() if a is not None and b is not None]
    agreement = np.mean([a == b for a, b in pairs])
    assert len(pairs) > 300
    assert agreement > 3 * (1 / cfg.n_themes), agreement  # chance is 1/n_themes


def test_planted_structure_titles_carry_the_theme(tmp_path):
    from models.data.synthetic import THEMES

    cfg = SyntheticConfig(n_reviews=5000, misleading_text_fraction=0.15)
    truth = generate(cfg, tmp_path)
    meta = _lines(tmp_path / f"meta_{cfg.domains[1]}.json.gz")
    themes = list(THEMES)
    hits = [any(w in m["title"] for w in THEMES[themes[t]][0]) for m, t in zip(meta, truth.item_theme[1], strict=True)]
    assert np.mean(hits) > 0.8


def test_popularity_is_long_tailed(tmp_path):
    cfg = SyntheticConfig(n_reviews=20000)
    generate(cfg, tmp_path)
    counts = {}
    for r in _lines(tmp_path / f"{cfg.domains[1]}.json.gz"):
        counts[r["asin"]] = counts.get(r["asin"], 0) + 1
    ordered = np.sort(np.array(list(counts.values())))[::-1]
    top_decile = ordered[: max(1, len(ordered) // 10)].sum() / ordered.sum()
    assert top_decile > 0.3  # uniform popularity would give about 0.1
