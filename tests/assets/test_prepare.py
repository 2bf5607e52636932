"""filtered_interactions, filtered_items: a k-core that leaves no overlapping user stops before the split."""



from pipeline.config import load_dataset_config
from tests.assets.stage_runs import demo_files, failure_messages, materialized, run, write_config


def test_no_overlapping_users_after_filtering_stops_before_the_split(tmp_path, storage_root,
                                                                     instance):
    files = demo_files(tmp_path, n_reviews=2000)
    cfg = load_dataset_config(write_config(tmp_path, "amazon2018", files, k_core=400))
    result = run(cfg, storage_root, instance)
    assert not result.success
    assert any("no overlapping users left after filtering" in m and "k_core=400" in m
               for m in failure_messages(result))
    assert materialized(instance, "interactions") == 1
    assert all(materialized(instance, key) == 0 for key in
               ("filtered_interactions", "filtered_items", "item_catalog", "sequences"))
