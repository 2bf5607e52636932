"""``pseudo_generations`` on stub tables, with the replay launcher standing in for the LLM worker."""

import dataclasses
import hashlib
import json
from pathlib import Path

import dagster as dg
import pytest

from assets import llm, pseudo
from models.pseudo.prompts import load_template
from pipeline import storage
from pipeline.resources import ReplayLLMLauncher, canned_reply
from tests.assets.stubs import SINGLE_USERS, catalog_table, sequences_table, table_asset, title
from tests.assets.stubs import storage as storage_resources
from tests.conftest import latest_materialization


@pytest.fixture
def cfg(demo_cfg):
    gen = dataclasses.replace(demo_cfg.generation, n_items=3, chunk_size=4, max_users_per_direction=None)
    return dataclasses.replace(demo_cfg, generation=gen)


def materialize(cfg, root, instance, launcher, selection=None) -> dg.ExecuteInProcessResult:
    assets = [table_asset("item_catalog", catalog_table()), table_asset("sequences", sequences_table()),
              *llm.build(cfg), *pseudo.build(cfg)]
    return dg.materialize(assets, resources={**storage_resources(root), "llm": launcher},
                          instance=instance, selection=selection)


def generations(instance) -> tuple[dict, dict]:
    """(metadata, rows by id) of the latest ``pseudo_generations``."""
    meta = latest_materialization(instance, "pseudo_generations").metadata
    table = storage.read(meta["path"].value)
    return meta, {row["id"]: row for row in table.iter_rows(named=True)}


def test_canned_answers_are_parsed_into_titles(cfg, storage_root, instance):
    assert materialize(cfg, storage_root, instance, ReplayLLMLauncher()).success
    meta, rows = generations(instance)
    ids = [f"{s}>{t}:{s.lower()}{u}" for s, t in (("A", "B"), ("B", "A")) for u in range(SINGLE_USERS)]
    assert sorted(rows) == sorted(ids)
    for rid, row in rows.items():
        assert row["output"] == canned_reply(rid, 3)
        assert row["titles"] == [f"Replayed pick {k} for {rid}" for k in (1, 2, 3)]
        assert row["answer_format"] == "list" and not row["no_usable_title"]
    assert meta["backend"].value == "replay"
    assert (meta["chunks_generated"].value, meta["chunks_resumed"].value) == (3, 0)  # 10 prompts, 4 a chunk
    assert meta["users_per_source_domain"].value == {"A": SINGLE_USERS, "B": SINGLE_USERS}
    assert meta["users_without_usable_title"].value == 0 and meta["parse_drops"].value == {}
    assert meta["mean_titles_per_user"].value == 3.0


def test_recorded_answers_keep_what_parses(cfg, storage_root, instance, tmp_path):
    answers = {f"A>B:a{u}": f"1. Kyoto Pan {u}\n2. Texas Pan {u}" for u in range(SINGLE_USERS)}
    answers |= {f"B>A:b{u}": f"1. Bakery Sauce {u}" for u in range(SINGLE_USERS)}
    answers["A>B:a0"] = f"1. {title('A', 0)}\n2. Kyoto Pan 9"  # a0 bought A0: not a cross-domain guess
    answers["B>A:b1"] = ""
    recorded = tmp_path / "recorded.jsonl"
    recorded.write_text("".join(json.dumps({"id": k, "output": v}) + "\n" for k, v in answers.items()))
    assert materialize(cfg, storage_root, instance, ReplayLLMLauncher(outputs_path=str(recorded))).success
    meta, rows = generations(instance)
    assert rows["A>B:a0"]["titles"] == ["Kyoto Pan 9"]
    assert rows["A>B:a2"]["titles"] == ["Kyoto Pan 2", "Texas Pan 2"]
    assert rows["B>A:b1"]["titles"] == [] and rows["B>A:b1"]["no_usable_title"]
    assert meta["parse_drops"].value == {"empty_answer": 1, "repeated_own": 1}
    assert meta["users_without_usable_title"].value == 1


def test_rerun_resumes_every_chunk_and_keeps_the_version(cfg, storage_root, instance):
    assert materialize(cfg, storage_root, instance, ReplayLLMLauncher()).success
    first, _ = generations(instance)
    assert materialize(cfg, storage_root, instance, ReplayLLMLauncher(), ["pseudo_generations"]).success
    again, _ = generations(instance)
    assert again["backend"].value == "resumed (no generation needed)"
    assert (again["chunks_generated"].value, again["chunks_resumed"].value) == (0, 3)
    assert again["version"].value == first["version"].value


def test_resume_folder_key_and_spec(cfg, storage_root, instance):
    """The resume key hashes prompts, sampling and the model's path, as every earlier run did."""
    assert materialize(cfg, storage_root, instance, ReplayLLMLauncher()).success
    meta, _ = generations(instance)
    work = storage_root / meta["cache"].value
    model = storage.read(latest_materialization(instance, "llm_model").metadata["path"].value)
    gen = cfg.generation
    sampling = {k: getattr(gen, k) for k in ("n_items", "temperature", "top_p", "max_tokens", "seed",
                                             "output_format", "backend", "dtype", "max_users_per_direction")}
    key = hashlib.sha256(((work / "prompts.jsonl").read_text() + json.dumps(sampling, sort_keys=True)
                          + str(model.path)).encode()).hexdigest()[:16]
    assert Path(meta["cache"].value) == Path(*pseudo.RESUME_DIR, key)
    spec = pseudo.generation_spec(gen, load_template(Path(gen.template)), llm.model_folder(model), work)
    assert (work / "spec.json").read_text() == spec.to_json()
    assert (spec.n_items, spec.chunk_size, spec.enforce_eager) == (3, 4, not gen.compile)
