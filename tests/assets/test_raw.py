"""raw_sources: a missing raw file is named and nothing downstream runs."""



from pipeline.config import load_dataset_config
from tests.assets.stage_runs import DOWNSTREAM, demo_files, failure_messages, materialized, run, write_config


def test_missing_raw_file_is_named(tmp_path, storage_root, instance):
    files = demo_files(tmp_path, n_reviews=2000)
    files["A"][1].unlink()
    cfg = load_dataset_config(write_config(tmp_path, "amazon2018", files))
    result = run(cfg, storage_root, instance)
    assert any(f"{files['A'][1]} does not exist" in m for m in failure_messages(result))
    assert all(materialized(instance, key) == 0 for key in DOWNSTREAM)
