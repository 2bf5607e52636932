"""item_catalog, sequences: the demo and the LLMCDSR release reach sequences with their checks passing."""

import dataclasses

import pytest

from pipeline.config import load_dataset_config
from tests.assets.stage_runs import (
    COLUMNS,
    failure_messages,
    run,
    stored,
)
from tests.conftest import LLMCDSR_DIR, requires_llmcdsr


@pytest.mark.slow
def test_demo_flows_from_raw_sources_to_sequences(demo_cfg, storage_root, instance):
    result = run(demo_cfg, storage_root, instance)
    assert result.success, failure_messages(result)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"every_user_and_item_has_k_interactions": True,
                      "no_held_out_user_in_training": True,
                      "held_out_histories_in_source_domain": True}
    for key, columns in COLUMNS.items():
        assert stored(storage_root, key).columns == list(columns)
    sequences = stored(storage_root, "sequences")
    assert set(sequences["split"]) == {"train", "valid", "test"}
    mats = [e.step_materialization_data.materialization
            for e in result.get_asset_materialization_events()]
    meta = {m.asset_key.path[-1]: m.metadata for m in mats}
    assert meta["quarantine"]["by_reason"].data == {"duplicate_review":
                                                    stored(storage_root, "quarantine").height}
    assert meta["filtered_interactions"]["overlapping_users"].value > 0
    assert 0 < meta["filtered_interactions"]["fraction_kept"].value < 1


@pytest.mark.slow
@pytest.mark.realdata
@requires_llmcdsr()
def test_llmcdsr_release_flows_with_its_own_split(storage_root, instance):
    from pipeline.settings import PROJECT_ROOT

    cfg = load_dataset_config(PROJECT_ROOT / "configs" / "food_kitchen_llmcdsr.yaml")
    assert cfg.release_dir == LLMCDSR_DIR.resolve()
    result = run(dataclasses.replace(cfg, history_policy="strict"), storage_root, instance)
    assert result.success, failure_messages(result)
    sequences = stored(storage_root, "sequences")
    counts = dict(sequences.group_by("split").len().iter_rows())
    assert counts == {"train": 5_472 + 38_191 + 7_501, "valid": 960, "test": 937}
    assert stored(storage_root, "item_catalog").height == 8_661 + 27_637
    assert stored(storage_root, "filtered_interactions").equals(stored(storage_root,
                                                                       "interactions"))
