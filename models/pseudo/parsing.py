"""Turning free LLM text into a clean list of guessed item titles, counting what was dropped.

Why so defensive: small models answer with prose, repeat the user's own
purchases, invent placeholders ("Item 1"), switch language, truncate JSON, or
echo instructions planted in product titles. None of that may break the
stage; every discarded line is counted by reason so the metadata shows how
usable the LLM's answers were.
"""

import json
import re
from collections import Counter
from dataclasses import dataclass, field

_LIST_PREFIX = re.compile(r"^\s*(?:[-*•+]|\(?\d{1,3}[.):\]]|\d{1,3}\s*-|[a-zA-Z][.)])\s+")
_JSON_STRING = re.compile(r'"((?:[^"\\]|\\.){1,400})"')
_PLACEHOLDER = re.compile(r"^(?:item|product|title|recommendation|example)\s*#?\s*\d*$", re.I)
_INJECTION = re.compile(
    r"ignore (?:all |any )?(?:previous|prior|above)|disregard|system prompt|you are now|"
    r"new instructions?|assistant:|###|<\|", re.I)
_PROSE_START = re.compile(r"^(?:sure|here (?:are|is)|based on|i (?:would|recommend|suggest)|"
                          r"these|the user|recommendations?\b|note)\b", re.I)
MIN_CHARS, MAX_WORDS = 3, 16


@dataclass
class ParsedGuesses:
    titles: list[str]
    dropped: Counter = field(default_factory=Counter)  # reason -> count
    format: str = "list"  # "json" | "list" | "empty"


def _norm(title: str) -> str:
    return re.sub(r"[\W_]+", " ", title.lower()).strip()


def _candidates(text: str) -> tuple[list[str], str]:
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            value = json.loads(stripped)
            if isinstance(value, list):
                return [v if isinstance(v, str) else json.dumps(v) for v in value], "json"
        except json.JSONDecodeError:
            # Truncated JSON (max_tokens hit): keep every complete string literal.
            found = [json.loads(f'"{m}"') for m in _JSON_STRING.findall(stripped)]
            if found:
                return found, "json"
    lines = [ln for ln in re.split(r"[\r\n]+", text) if ln.strip()]
    return lines, "list" if lines else "empty"


def _is_foreign(title: str) -> bool:
    letters = [c for c in title if c.isalpha()]
    return bool(letters) and sum(c.isascii() for c in letters) / len(letters) < 0.6


def parse_guesses(text: str | None, n_items: int, own_titles: list[str] = ()) -> ParsedGuesses:
    """Usable, deduplicated titles (at most ``n_items``) from one LLM answer.

    ``own_titles`` are the user's source-domain titles: repeating them is not a
    cross-domain guess, so such lines are dropped and counted as ``repeated_own``.
    """
    result = ParsedGuesses([])
    if not text or not text.strip():
        result.format = "empty"
        result.dropped["empty_answer"] += 1
        return result
    candidates, result.format = _candidates(text)
    own = {_norm(t) for t in own_titles if t}
    seen: set[str] = set()
    for raw in candidates:
        title = _LIST_PREFIX.sub("", raw).strip().strip("\"'`*_ ").rstrip(",.;:")
        title = re.sub(r"\s+", " ", title)
        key = _norm(title)
        if len(key) < MIN_CHARS:
            reason = "empty_line"
        elif _INJECTION.search(title):
            reason = "instruction_like"
        elif _PLACEHOLDER.match(title):
            reason = "placeholder"
        elif _PROSE_START.match(title) or len(title.split()) > MAX_WORDS or title.endswith(":"):
            reason = "prose"
        elif _is_foreign(title):
            reason = "foreign_language"
        elif key in own:
            reason = "repeated_own"
        elif key in seen:
            reason = "duplicate"
        elif len(result.titles) >= n_items:
            reason = "surplus"
        else:
            seen.add(key)
            result.titles.append(title)
            continue
        result.dropped[reason] += 1
    return result
