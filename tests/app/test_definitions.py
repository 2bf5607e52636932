import dagster as dg

from app.definitions import build_definitions, defs


def test_definitions_load_and_validate():
    graph = defs.resolve_asset_graph()
    assert dg.AssetKey("raw_sources") in graph.get_all_asset_keys()
    assert defs.resolve_job_def("full_rebuild") is not None
    schedule = defs.resolve_schedule_def("weekly_full_rebuild")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    dg.Definitions.validate_loadable(defs)


def test_every_asset_has_an_explicit_code_version(demo_cfg, tmp_path):
    graph = build_definitions(demo_cfg, tmp_path).resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        assert graph.get(key).code_version, f"{key.to_user_string()} has no code_version"


def test_workspace_points_at_the_definitions_module():
    import yaml

    from pipeline.settings import PROJECT_ROOT

    workspace = yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["python_module"]["module_name"] == "app.definitions"
