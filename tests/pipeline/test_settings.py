"""Where a dataset's storage and instance live: one folder each per dataset, environment first."""

from pipeline import settings


def test_each_dataset_gets_its_own_storage_and_instance(monkeypatch):
    monkeypatch.delenv(settings.ENV_STORAGE_ROOT, raising=False)
    monkeypatch.delenv(settings.ENV_DAGSTER_HOME, raising=False)
    monkeypatch.setenv(settings.ENV_DATASET, "food_kitchen_llmcdsr")
    assert settings.dataset_config_path() == settings.PROJECT_ROOT / "configs" / "food_kitchen_llmcdsr.yaml"
    assert settings.storage_root_default().endswith(".lgcd/food_kitchen_llmcdsr/storage")
    assert settings.dagster_home_default().parts[-2:] == ("food_kitchen_llmcdsr", "dagster_home")


def test_a_yaml_path_is_taken_as_it_is_and_the_environment_overrides_the_folders(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(settings.ENV_DATASET, "mine.yaml")
    monkeypatch.setenv(settings.ENV_STORAGE_ROOT, str(tmp_path / "s"))
    assert settings.dataset_config_path() == tmp_path / "mine.yaml" and settings.dataset_name() == "mine"
    assert settings.storage_root_default() == str(tmp_path / "s")


def test_a_new_instance_home_gets_the_projects_dagster_yaml_and_keeps_its_own(tmp_path):
    home = settings.ensure_instance_home(tmp_path / "home")
    assert "telemetry" in (home / "dagster.yaml").read_text()
    (home / "dagster.yaml").write_text("mine: true\n")
    assert (settings.ensure_instance_home(home) / "dagster.yaml").read_text() == "mine: true\n"
