"""Stage 3b: LLM guesses of target-domain items for single-domain users (eq. 4).

The code version hashes the prompt template file, the model and the sampling
parameters: editing the prompt marks this asset (and then its downstream)
unsynced and leaves every upstream asset fresh. Generation runs in the LLM
environment (``workers/llm.py``, launched by the ``llm`` resource), in chunks that are kept
under ``<storage>/.cache/pseudo_generations/<inputs hash>/`` as they finish, so a
killed run resumes from the last completed chunk.
"""

import hashlib
import json
from collections import Counter
from pathlib import Path

import dagster as dg
import polars as pl

from assets import groups
from assets.llm import model_folder
from models.pseudo.parsing import parse_guesses
from models.pseudo.prompts import PromptTemplate, PromptTemplateError, load_template
from models.pseudo.requests import GenerationConfig, generation_requests
from pipeline.config import DatasetConfig
from pipeline.errors import user_errors
from pipeline.executors import PRIORITY_CHAIN, priority
from pipeline.io_managers import CACHE, VersionStore
from pipeline.resources import LLMLauncher
from pipeline.storage import FileTree
from pipeline.versioning import code_version
from workers.spec import GenerationSpec

RESUME_DIR = (".cache", "pseudo_generations")


def generation_spec(gen: GenerationConfig, template: PromptTemplate, model_path: Path,
                    work: Path) -> GenerationSpec:
    """The worker's spec for one run: sampling from ``gen``, files under ``work``.

    The title cap is the template's: the JSON output schema allows guesses as long as the
    history titles the prompt shows.
    """
    return GenerationSpec(
        model_path=str(model_path), seed=gen.seed, output_format=gen.output_format,
        n_items=gen.n_items, max_title_chars=template.max_title_chars, temperature=gen.temperature,
        top_p=gen.top_p, max_tokens=gen.max_tokens, backend=gen.backend, dtype=gen.dtype,
        max_model_len=gen.max_model_len, chunk_size=gen.chunk_size, max_num_seqs=gen.max_num_seqs,
        max_num_batched_tokens=gen.max_num_batched_tokens, kv_cache_gib=gen.kv_cache_gib,
        enforce_eager=not gen.compile, chunk_dir=str(work / "chunks"),
        prompts_path=str(work / "prompts.jsonl"))


def _rate(tokens: int, stats: dict) -> float | None:
    """Tokens per second of generation time, None when nothing was generated (a resumed run)."""
    return round(tokens / stats["seconds"], 1) if stats.get("seconds") else None


def _parse_all(requests: pl.DataFrame, outputs: dict[str, str], n_items: int) -> tuple[pl.DataFrame, Counter]:
    drops: Counter = Counter()
    titles, dropped, formats = [], [], []
    for rid, own in zip(requests["id"], requests["history_titles"], strict=True):
        parsed = parse_guesses(outputs.get(rid), n_items, own)
        drops.update(parsed.dropped)
        titles.append(parsed.titles)
        dropped.append(json.dumps(dict(parsed.dropped), sort_keys=True))
        formats.append(parsed.format)
    frame = requests.select("id", "user", "source_domain", "target_domain").with_columns(
        prompt=requests["messages"].list.last().struct.field("content"),
        output=pl.Series([outputs.get(r, "") for r in requests["id"]], dtype=pl.String),
        titles=pl.Series(titles, dtype=pl.List(pl.String)),
        answer_format=pl.Series(formats, dtype=pl.String),
        dropped=pl.Series(dropped, dtype=pl.String),
    ).with_columns(no_usable_title=pl.col("titles").list.len() == 0)
    return frame, drops


def _sample_md(frame: pl.DataFrame, prefixes: dict[str, str]) -> str:
    parts = [f"**Shared prefix {k}** (cached by vLLM across users):\n```\n{v[:1500]}\n```" for k, v in prefixes.items()]
    for row in frame.head(3).iter_rows(named=True):
        parts.append(f"**{row['id']}** output:\n```\n{row['output'][:600]}\n```\nparsed: {row['titles']}")
    return "\n\n".join(parts)


def build(cfg: DatasetConfig) -> list[dg.AssetsDefinition]:
    gen = cfg.generation
    with user_errors(PromptTemplateError):
        template = load_template(Path(gen.template))
    sampling = {k: getattr(gen, k) for k in ("n_items", "temperature", "top_p", "max_tokens", "seed",
                                            "output_format", "backend", "dtype", "max_users_per_direction")}

    @dg.asset(group_name=groups.PSEUDO, pool="gpu", kinds={"vllm", "parquet"},
              op_tags=priority(PRIORITY_CHAIN),
              code_version=code_version("gen1", template.sha256, gen.model, sampling))
    def pseudo_generations(context: dg.AssetExecutionContext, store: VersionStore, llm: LLMLauncher,
                           sequences: pl.DataFrame, item_catalog: pl.DataFrame,
                           llm_model: FileTree) -> dg.MaterializeResult:
        """LLM-guessed target-domain item titles for every single-domain training user."""
        categories = dict(zip(("A", "B"), cfg.domain_categories(), strict=True))
        requests, prefixes = generation_requests(sequences, item_catalog, categories, template, gen)
        prompts = "".join(json.dumps({"id": i, "messages": m}) + "\n"
                          for i, m in zip(requests["id"], requests["messages"].to_list(), strict=True))
        spec_key = hashlib.sha256((prompts + json.dumps(sampling, sort_keys=True)
                                   + str(llm_model.path)).encode()).hexdigest()[:16]
        work = store.path().joinpath(*RESUME_DIR, spec_key)
        work.mkdir(parents=True, exist_ok=True)
        (work / "prompts.jsonl").write_text(prompts)
        spec = generation_spec(gen, template, model_folder(llm_model), work)
        (work / "spec.json").write_text(spec.to_json())
        context.log.info(f"{requests.height} prompts; resume folder {work}")
        with user_errors():
            stats = llm.generate(context, work / "spec.json")
        frame, drops = _parse_all(requests, spec.read_outputs(), gen.n_items)
        per_direction = frame.group_by("source_domain").len().sort("source_domain")
        return store.publish(
            frame, backend=str(stats.get("backend") or "resumed (no generation needed)"),
            dtype=str(stats.get("dtype") or ""),
            tokens_per_s=stats.get("tokens_per_s"), generated_tokens=stats.get("tokens", 0),
            prompt_tokens=stats.get("prompt_tokens", 0),
            prompt_tokens_cached=stats.get("prompt_tokens_cached", 0),
            prompt_tokens_computed_per_s=_rate(stats.get("prompt_tokens", 0)
                                               - stats.get("prompt_tokens_cached", 0), stats),
            engine_start_s=stats.get("engine_start_s"),
            prefix_cache_hit_rate=stats.get("prefix_cache_hit_rate"),
            chunks_resumed=stats.get("chunks_resumed", 0), chunks_generated=stats.get("chunks_generated", 0),
            users_per_source_domain=dg.MetadataValue.json(dict(per_direction.iter_rows())),
            users_without_usable_title=int(frame["no_usable_title"].sum()),
            parse_drops=dg.MetadataValue.json(dict(drops)),
            mean_titles_per_user=round(float(frame["titles"].list.len().mean() or 0.0), 2),
            template=gen.template, template_sha256=template.sha256,
            **{CACHE: str(Path(*RESUME_DIR, spec_key))},
            samples=dg.MetadataValue.md(_sample_md(frame, prefixes)))

    return [pseudo_generations]
