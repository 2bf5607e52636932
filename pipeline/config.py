"""Typed run configuration: one YAML file per dataset pair in ``configs/``.

The file is validated when the code location loads, so a typo fails in the UI's
"Reload definitions" with the file and field named, not halfway through a run.
"""

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from models.data.synthetic import SyntheticConfig
from models.encoders.pretraining import EncoderTrainConfig
from models.encoders.text_embedding import EmbeddingConfig
from models.evaluation.config import EvaluationConfig
from models.evaluation.plan import check_sweep, extra_specs
from models.lgcd.stage import LGCDStageConfig
from models.pseudo.requests import GenerationConfig, GroundingConfig
from models.pseudo.retrieval import IndexConfig

Format = Literal["synthetic", "amazon2018", "amazon2023", "llmcdsr"]
FORMATS: tuple[str, ...] = ("synthetic", "amazon2018", "amazon2023", "llmcdsr")
DOMAIN_KEYS = ("A", "B")


class ConfigError(ValueError):
    """A dataset configuration that cannot be used; the message names the file and field."""


@dataclass(frozen=True)
class DomainSource:
    category: str  # Amazon category name, e.g. Grocery_and_Gourmet_Food
    reviews: Path | None = None  # raw review file (amazon formats)
    meta: Path | None = None  # raw metadata file (amazon formats)


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    format: Format
    domains: dict[str, DomainSource]  # keys "A" and "B"
    window_days: int | None = 365  # keep the newest N days; None keeps everything
    k_core: int = 5  # iterative k-core on users and items
    train_fraction: float = 0.8  # overlapping users used as training anchors
    seed: int = 0
    release_dir: Path | None = None  # llmcdsr: folder holding the processed release
    history_policy: Literal["strict", "full"] = "strict"  # llmcdsr valid/test histories
    # the executor of ``app.cli demo`` on this dataset (its --executor overrides it); the
    # UI and the daemon take $LGCD_EXECUTOR (pipeline/executors.py)
    executor: Literal["in_process", "multiprocess"] = "in_process"
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)  # item text embedder
    encoder: EncoderTrainConfig = field(default_factory=EncoderTrainConfig)  # domain pretraining
    generation: GenerationConfig = field(default_factory=GenerationConfig)  # LLM guesses (eq. 4)
    grounding: GroundingConfig = field(default_factory=GroundingConfig)  # retrieval (eqs. 5-6)
    lgcd: LGCDStageConfig = field(default_factory=LGCDStageConfig)  # model + variants (3.4-3.5)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)  # metrics, baselines
    source_file: Path | None = None

    def domain_categories(self) -> tuple[str, str]:
        return self.domains["A"].category, self.domains["B"].category


def _resolve(base: Path, value: Any) -> Path | None:
    if value is None:
        return None
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def load_dataset_config(path: Path) -> DatasetConfig:
    """Parse and validate one dataset YAML; relative paths are relative to the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"dataset config {path} does not exist (set LGCD_DATASET to a file in configs/)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"dataset config {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"dataset config {path} must be a mapping")

    def fail(msg: str) -> ConfigError:
        return ConfigError(f"dataset config {path}: {msg}")

    known = {f.name for f in fields(DatasetConfig)} - {"source_file"}
    unknown = set(raw) - known
    if unknown:
        raise fail(f"unknown fields {sorted(unknown)}; allowed {sorted(known)}")
    fmt = raw.get("format")
    if fmt not in FORMATS:
        raise fail(f"format={fmt!r}; allowed {list(FORMATS)}")
    domains_raw = raw.get("domains") or {}
    if set(domains_raw) != set(DOMAIN_KEYS):
        raise fail(f"domains must have exactly the keys A and B, got {sorted(domains_raw)}")
    base = path.parent
    domains = {}
    for key in DOMAIN_KEYS:
        entry = domains_raw[key] or {}
        if "category" not in entry:
            raise fail(f"domains.{key}.category is missing")
        domains[key] = DomainSource(
            category=str(entry["category"]),
            reviews=_resolve(base, entry.get("reviews")),
            meta=_resolve(base, entry.get("meta")),
        )
        if fmt in {"amazon2018", "amazon2023"} and (domains[key].reviews is None or domains[key].meta is None):
            raise fail(f"domains.{key} needs 'reviews' and 'meta' paths for format {fmt}")
    if domains["A"].category == domains["B"].category:
        raise fail("domains A and B must be different categories")
    window = raw.get("window_days", 365)
    if window is not None and (not isinstance(window, int) or window <= 0):
        raise fail(f"window_days={window!r}; must be a positive integer or null")
    k = raw.get("k_core", 5)
    if not isinstance(k, int) or not 1 <= k <= 1000:
        raise fail(f"k_core={k!r}; allowed integers in [1, 1000]")
    frac = raw.get("train_fraction", 0.8)
    if not isinstance(frac, int | float) or not 0.0 < frac < 1.0:
        raise fail(f"train_fraction={frac!r}; allowed (0, 1)")
    policy = raw.get("history_policy", "strict")
    if policy not in ("strict", "full"):
        raise fail(f"history_policy={policy!r}; allowed ['strict', 'full']")
    executor = raw.get("executor", "in_process")
    if executor not in ("in_process", "multiprocess"):
        raise fail(f"executor={executor!r}; allowed ['in_process', 'multiprocess']")
    synthetic_raw = raw.get("synthetic") or {}
    # the dataset seed also seeds the corpus, pretraining, LLM sampling, pseudo-item insertion
    # and LGCD, unless a section sets its own ``seed``
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise fail(f"seed={seed!r}; must be an integer")
    try:
        synthetic = SyntheticConfig(**{"seed": seed, **synthetic_raw,
                                       "domains": (domains["A"].category, domains["B"].category)})
    except (TypeError, ValueError) as exc:
        raise fail(f"synthetic: {exc}") from exc
    release = _resolve(base, raw.get("release_dir"))
    embedding_raw = dict(raw.get("embedding") or {})
    model = str(embedding_raw.get("model", ""))
    if model.startswith((".", "~")) or "/" in model:  # a folder, relative to this file
        embedding_raw["model"] = str(_resolve(base, model))
    try:
        embedding = EmbeddingConfig(**embedding_raw)
    except (TypeError, ValueError) as exc:
        raise fail(f"embedding: {exc}") from exc
    try:
        encoder = EncoderTrainConfig(**{"seed": seed, **(raw.get("encoder") or {})})
    except (TypeError, ValueError) as exc:
        raise fail(f"encoder: {exc}") from exc
    generation_raw = dict(raw.get("generation") or {})
    for key in ("model", "template", "llm_python"):  # folders and files, relative to this file
        value = str(generation_raw.get(key, ""))
        if value.startswith((".", "~")) or "/" in value:
            generation_raw[key] = str(_resolve(base, value))
    try:
        generation = GenerationConfig(**{"seed": seed, **generation_raw})
    except (TypeError, ValueError) as exc:
        raise fail(f"generation: {exc}") from exc
    grounding_raw = dict(raw.get("grounding") or {})
    try:
        grounding = GroundingConfig(**{"seed": seed, **grounding_raw,
                                       "index": IndexConfig(**(grounding_raw.get("index") or {}))})
    except (TypeError, ValueError) as exc:
        raise fail(f"grounding: {exc}") from exc
    lgcd_raw = raw.get("lgcd") or {}
    if not isinstance(lgcd_raw, dict):
        raise fail(f"lgcd must be a mapping, got {lgcd_raw!r}")
    try:  # sized to the encoders; nK defaults to what the grounding stage retrieves
        lgcd = LGCDStageConfig.from_mapping(lgcd_raw, {"d": encoder.d, "max_len": encoder.max_len,
                                                       "n_k": grounding.n_k, "seed": seed})
    except (TypeError, ValueError) as exc:
        raise fail(f"lgcd: {exc}") from exc
    for spec in lgcd.variants:
        n_k = lgcd.variant_config(spec).n_k
        if n_k > grounding.n_k:
            raise fail(f"lgcd: variant {spec.name!r} has n_k={n_k} but grounding.n_k="
                       f"{grounding.n_k} pseudo items are retrieved; raise grounding.n_k")
    try:
        evaluation = EvaluationConfig.from_dict(raw.get("evaluation"))
        check_sweep(evaluation.sweep, grounding.n_k)
        # generated names must not clash with configured variants
        extra_specs(lgcd, evaluation.seeds, evaluation.sweep, evaluation.variant_seeds)
    except (TypeError, ValueError) as exc:
        raise fail(f"evaluation: {exc}") from exc
    if fmt == "llmcdsr" and release is None:
        raise fail("format llmcdsr needs release_dir")
    return DatasetConfig(
        name=str(raw.get("name", path.stem)),
        format=fmt,
        domains=domains,
        window_days=window,
        k_core=k,
        train_fraction=float(frac),
        seed=seed,
        release_dir=release,
        history_policy=policy,
        executor=executor,
        synthetic=synthetic,
        embedding=embedding,
        encoder=encoder,
        generation=generation,
        grounding=grounding,
        lgcd=lgcd,
        evaluation=evaluation,
        source_file=path.resolve(),
    )
