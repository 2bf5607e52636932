"""Column contracts of the tables that flow between stages.

Every stage reads and writes these names; a stage that needs another column adds
it here first. Domains are always the strings ``"A"`` and ``"B"`` (A = the
dataset config's first category); item indices are 0-based *within* a domain.

interactions (raw ingestion, then filtered):
    user: str, item: str, timestamp: i64 (unix seconds), rating: f64, domain: str

items (raw ingestion, then filtered):
    item: str, domain: str, title: str, category: str, brand: str, description: str,
    text: str  -- sanitized "title | category | brand" used for embeddings and prompts

quarantine (records kept aside, never silently dropped):
    source: str (file path), line: i64 (1-based, 0 when not line based), reason: str,
    record: str (the offending text, capped)

item_catalog (the split's item index, one row per kept item):
    item: str, domain: str, index: i32, title: str, text: str

sequences (the split; one row per user sequence, chronological):
    user: str,
    split: str        -- "train" | "valid" | "test"
    kind: str         -- "single" (one domain only) | "overlap" (both domains)
    items: list[i32]  -- history item indices (per-domain index, see ``domains``)
    domains: list[str]-- domain of each history item
    timestamps: list[i64]
    target_item: i32 | null    -- valid/test: ground truth; train overlap: last item
    target_domain: str | null  -- domain of target_item
    source_domain: str | null  -- the single domain ("single"), or the non-target domain

For ``split == "train" and kind == "overlap"`` the history is the full mixed
sequence *without* the target; for valid/test the history obeys the history
policy (``strict``: only source-domain items).

item_text_embeddings_{a,b} (one table per domain, one row per item, ordered by index):
    item: str, index: i32, embedding: array[f32, E]  -- sentence embedding of the item text
"""

INTERACTIONS = ("user", "item", "timestamp", "rating", "domain")
ITEMS = ("item", "domain", "title", "category", "brand", "description", "text")
QUARANTINE = ("source", "line", "reason", "record")
ITEM_CATALOG = ("item", "domain", "index", "title", "text")
SEQUENCES = ("user", "split", "kind", "items", "domains", "timestamps", "target_item",
             "target_domain", "source_domain")
ITEM_TEXT_EMBEDDINGS = ("item", "index", "embedding")


def other(domain: str) -> str:
    """The other domain of the pair."""
    return "B" if domain == "A" else "A"
