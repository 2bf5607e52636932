"""Prompts for pseudo-interaction generation, built from a versioned template file.

Why a file: researchers iterate on the wording; the file's hash is part of the
generation asset's code version, so Dagster knows exactly what a prompt edit
invalidates. Why the care with titles: product titles are untrusted text that
lands inside an instruction. Each title is sanitized (HTML, control characters,
length), chat-template markers are neutralized, and a user's titles are only
ever substituted into that user's own prompt, after the shared prefix, so the
template and every other user's prompt are unaffected by what a title says.
"""

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from models.data.text import sanitize

REQUIRED = ("system", "instruction", "example", "query")
# Markers that delimit roles or sections in common chat templates and in our template.
_MARKERS = re.compile(r"<\|[^|>]{0,40}\|?>|<\|?|\|>|\[/?INST\]|<</?SYS>>|#{2,}|`{3,}|</?s>", re.I)


class PromptTemplateError(ValueError):
    """A template file that is missing, unparsable or lacks a field; names the file."""


@dataclass(frozen=True)
class PromptTemplate:
    system: str
    instruction: str
    example: str
    query: str
    n_examples: int = 2
    max_history_items: int = 10
    max_title_chars: int = 80
    domain_names: dict[str, str] = field(default_factory=dict)
    sha256: str = ""  # of the file's bytes: part of the generation asset's code version

    def domain_name(self, category: str) -> str:
        return self.domain_names.get(category, category.replace("_", " ").lower())


def load_template(path: Path) -> PromptTemplate:
    path = Path(path)
    if not path.is_file():
        raise PromptTemplateError(f"prompt template {path} does not exist")
    raw_bytes = path.read_bytes()
    try:
        raw = yaml.safe_load(raw_bytes) or {}
    except yaml.YAMLError as exc:
        raise PromptTemplateError(f"prompt template {path} is not valid YAML: {exc}") from exc
    missing = [k for k in REQUIRED if not isinstance(raw.get(k), str) or not raw[k].strip()]
    if missing:
        raise PromptTemplateError(f"prompt template {path} lacks text fields {missing}")
    for key, low, high in (("n_examples", 0, 10), ("max_history_items", 1, 100), ("max_title_chars", 10, 500)):
        value = raw.get(key, PromptTemplate.__dataclass_fields__[key].default)
        if not isinstance(value, int) or not low <= value <= high:
            raise PromptTemplateError(f"prompt template {path}: {key}={value!r}, allowed [{low}, {high}]")
    known = set(PromptTemplate.__dataclass_fields__) - {"sha256"}
    return PromptTemplate(**{k: v for k, v in raw.items() if k in known},
                          sha256=hashlib.sha256(raw_bytes).hexdigest())


def clean_title(title: str | None, cap: int) -> str:
    """One untrusted title made safe to quote: sanitized, markers removed, single line, capped."""
    text = sanitize([title], cap=cap * 2)[0]
    text = _MARKERS.sub(" ", text)
    text = re.sub(r"\s+", " ", text).strip(" -*#>")
    return text[:cap].strip()


def history_block(titles: list[str], tpl: PromptTemplate) -> str:
    """The most recent ``max_history_items`` titles as "- title" lines (empty ones dropped)."""
    cleaned = [clean_title(t, tpl.max_title_chars) for t in titles[-tpl.max_history_items:]]
    return "\n".join(f"- {t}" for t in cleaned if t)


def numbered(titles: list[str], tpl: PromptTemplate) -> str:
    cleaned = [clean_title(t, tpl.max_title_chars) for t in titles]
    return "\n".join(f"{i}. {t}" for i, t in enumerate((t for t in cleaned if t), 1))


@dataclass(frozen=True)
class Example:
    source_titles: list[str]
    target_titles: list[str]


def shared_prefix(tpl: PromptTemplate, source_cat: str, target_cat: str, n_items: int,
                  examples: list[Example]) -> str:
    """Instruction plus in-context examples, identical for every user of a direction.

    Identical is what lets vLLM's prefix cache compute it once per direction.
    """
    names = {"source": tpl.domain_name(source_cat), "target": tpl.domain_name(target_cat),
             "n_items": n_items}
    parts = [tpl.instruction.format(**names)]
    for ex in examples:
        parts.append(tpl.example.format(**names, history=history_block(ex.source_titles, tpl),
                                        answer=numbered(ex.target_titles[:n_items], tpl)))
    return "\n\n".join(parts)


def build_messages(tpl: PromptTemplate, prefix: str, source_cat: str, target_cat: str,
                   n_items: int, history_titles: list[str]) -> list[dict[str, str]]:
    """Chat messages for one user: system, then the shared prefix and the user's history."""
    names = {"source": tpl.domain_name(source_cat), "target": tpl.domain_name(target_cat),
             "n_items": n_items}
    query = tpl.query.format(**names, history=history_block(history_titles, tpl))
    return [{"role": "system", "content": tpl.system.strip()},
            {"role": "user", "content": f"{prefix}\n\n{query}"}]
