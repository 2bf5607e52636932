"""The layers only point down: app -> assets -> pipeline -> models.

models/ is plain torch / polars code that a notebook or another orchestrator can use,
so it imports neither Dagster nor the packages above it; pipeline/ is what assets
depend on, so it never imports an asset module; nothing below app/ imports app/.
Every import statement is read from the source (including ones inside functions),
so a lazy import cannot slip past.
"""

import ast
import sys
from pathlib import Path

import pytest

from pipeline.settings import PROJECT_ROOT

FORBIDDEN = {
    "models": {"dagster", "dagster_pipes", "pipeline", "assets", "app"},
    "pipeline": {"assets", "app"},
    "assets": {"app"},
    "workers": {"models", "pipeline", "assets", "app", "dagster"},  # runs in the bare LLM environment
}


def imported_roots(source: str) -> set[tuple[int, str]]:
    """(line, top-level package) of every import in ``source``."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {(node.lineno, alias.name.split(".")[0]) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.lineno, node.module.split(".")[0]))
    return found


def violations(package: str, root: Path = PROJECT_ROOT) -> list[str]:
    out = []
    for file in sorted((root / package).rglob("*.py")):
        for line, name in sorted(imported_roots(file.read_text())):
            if name in FORBIDDEN[package]:
                out.append(f"{file.relative_to(root)}:{line} imports {name}")
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_runs_back_up_the_layers(package):
    assert violations(package) == []


def test_the_check_sees_a_lazy_import_inside_a_function(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "bad.py").write_text(
        "import torch\n\ndef f():\n    from pipeline.storage import Checkpoint\n    import dagster as dg\n")
    assert violations("models", tmp_path) == ["models/bad.py:4 imports pipeline",
                                              "models/bad.py:5 imports dagster"]


# models/ stage packages, in data-flow order: a stage imports only earlier stages and the shared
# modules at models/ top level (train, metrics, losses, device, config, sampling), which import
# no stage
STAGES = ("data", "encoders", "pseudo", "lgcd", "evaluation", "report")


def stage_violations(root: Path = PROJECT_ROOT) -> list[str]:
    out = []
    for file in sorted((root / "models").rglob("*.py")):
        parts = file.relative_to(root / "models").parts
        mine = STAGES.index(parts[0]) if len(parts) > 1 else -1
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("models."):
                other = node.module.split(".")[1]
                if other in STAGES and STAGES.index(other) > mine:
                    out.append(f"{file.relative_to(root)}:{node.lineno} imports models.{other}")
    return out


def test_each_models_stage_imports_only_earlier_stages():
    assert stage_violations() == []


def test_the_stage_check_sees_an_import_against_the_data_flow(tmp_path):
    (tmp_path / "models" / "lgcd").mkdir(parents=True)
    (tmp_path / "models" / "lgcd" / "bad.py").write_text("from models.evaluation.ranking import rank_users\n")
    (tmp_path / "models" / "train.py").write_text("from models.data.schema import SEQUENCES\n")
    assert stage_violations(tmp_path) == ["models/lgcd/bad.py:1 imports models.evaluation",
                                          "models/train.py:1 imports models.data"]


def test_the_worker_spec_is_standard_library_only():
    """workers/spec.py is read by the worker in a bare model container."""
    source = (PROJECT_ROOT / "workers" / "spec.py").read_text()
    assert {name for _, name in imported_roots(source)} <= set(sys.stdlib_module_names)


def layout_folders(readme: str) -> set[str]:
    """The folders named in the first column of the README's Layout table."""
    section = readme.split("## Layout\n", 1)[1].split("\n## ", 1)[0]
    table = section.split("| folder | what lives there |", 1)[1].split("\n\n", 1)[0]
    return {row.split("`")[1].rstrip("/") for row in table.splitlines()[2:] if row.startswith("| `")}


def test_the_readme_layout_table_matches_the_tree():
    """Every code folder and every models/ package has a row, and every row is a folder here."""
    listed = layout_folders((PROJECT_ROOT / "README.md").read_text())
    code = {p.name for p in PROJECT_ROOT.iterdir()
            if p.is_dir() and not p.name.startswith(".") and any(p.glob("*.py"))}
    stages = {str(p.parent.relative_to(PROJECT_ROOT)) for p in (PROJECT_ROOT / "models").glob("*/__init__.py")}
    assert listed == code | stages | {"configs", "prompts"}
