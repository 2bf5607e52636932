"""The worker's GenerationSpec: an exact JSON round trip, strict keys, chunks and their files."""

import dataclasses
import json

import pytest

from tests.workers.spec_files import make_spec
from workers.spec import GenerationSpec, SpecError


def test_spec_round_trips_exactly(tmp_path):
    spec = make_spec(tmp_path)
    again = GenerationSpec.from_json(spec.to_json())
    assert again == spec
    assert again.to_json() == spec.to_json()
    assert list(json.loads(spec.to_json())) == [f.name for f in dataclasses.fields(GenerationSpec)]


def test_spec_rejects_an_unknown_key_by_name(tmp_path):
    raw = json.loads(make_spec(tmp_path).to_json()) | {"top_k": 5}
    with pytest.raises(SpecError, match=r"unknown keys \['top_k'\], missing keys \[\]"):
        GenerationSpec.from_json(json.dumps(raw))


def test_spec_rejects_a_missing_key_by_name(tmp_path):
    raw = json.loads(make_spec(tmp_path).to_json())
    del raw["kv_cache_gib"]
    with pytest.raises(SpecError, match=r"missing keys \['kv_cache_gib'\]"):
        GenerationSpec.from_json(json.dumps(raw))


def test_spec_rejects_json_that_is_not_an_object():
    with pytest.raises(SpecError, match="generation spec is a JSON list, not an object"):
        GenerationSpec.from_json("[1, 2]")


def test_spec_chunks_and_their_files(tmp_path):
    spec = make_spec(tmp_path, n_prompts=5, chunk_size=2)
    chunks = spec.chunks(spec.read_prompts())
    assert [[p["id"] for p in c] for c in chunks] == [["p0", "p1"], ["p2", "p3"], ["p4"]]
    (tmp_path / "chunks").mkdir()
    spec.write_chunk(1, [("p2", "two"), ("p3", "three")])
    assert spec.chunk_path(1).name == "chunk-00001.jsonl"
    assert [p.name for p in (tmp_path / "chunks").iterdir()] == ["chunk-00001.jsonl"]  # no temp file left
    assert spec.read_outputs() == {"p2": "two", "p3": "three"}


def test_rewriting_a_chunk_replaces_it_and_outputs_gather_every_chunk(tmp_path):
    spec = make_spec(tmp_path, n_prompts=3, chunk_size=2)
    (tmp_path / "chunks").mkdir()
    spec.write_chunk(0, [("p0", "old"), ("p1", "old")])
    spec.write_chunk(1, [("p2", "two")])
    spec.write_chunk(0, [("p0", "zero"), ("p1", "")])
    assert sorted(p.name for p in (tmp_path / "chunks").iterdir()) == ["chunk-00000.jsonl",
                                                                       "chunk-00001.jsonl"]
    assert spec.read_outputs() == {"p0": "zero", "p1": "", "p2": "two"}
