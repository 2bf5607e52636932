"""Deterministic synthetic corpus in the raw Amazon Review Data (2018) format.

Why synthetic: the real dumps are tens of GB and cannot ship with the project,
yet every stage must run end to end on a fresh machine. The corpus plants the
structure LGCD exploits, so a working pipeline is measurably better than chance:

* each user has a latent taste (a Dirichlet mixture over themes) that drives
  choices in *both* domains, so overlapping users carry cross-domain signal;
* item titles, brands and categories contain theme words shared across the two
  domains ("Tuscan Pesto" / "Tuscan Pizza Stone"), so text and an LLM can
  transfer preferences; a fraction of items carry a misleading theme word;
* item popularity is Zipf-distributed (long tail);
* the fraction of overlapping users is a knob, and so is the scale (number of
  reviews, 2 thousand to 10 million), written in streamed chunks.

The files are ``<Category>.json.gz`` and ``meta_<Category>.json.gz`` with the
2018 field names, gzip-written with mtime 0 so equal configs give equal bytes.
"""

import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# One theme per entry: "name: theme words | grocery nouns | kitchen nouns".
_THEME_TABLE = """
italian:   Tuscan, Italian, Roman
         | Pasta, Pesto Sauce, Olive Oil, Balsamic Vinegar, Parmesan Crisps
         | Pasta Maker, Pizza Stone, Oil Dispenser, Cheese Grater, Ravioli Cutter
asian:     Kyoto, Sichuan, Bangkok
         | Green Tea, Soy Sauce, Ramen Noodles, Curry Paste, Rice Crackers
         | Carbon Steel Wok, Rice Cooker, Bamboo Steamer, Chopsticks Set, Sushi Mat
baking:    Vanilla, Bakery, Artisan
         | Bread Flour, Cake Mix, Chocolate Chips, Sprinkles, Yeast
         | Stand Mixer, Cake Pan, Rolling Pin, Cookie Sheet, Pastry Brush
coffee:    Espresso, Barista, Dark Roast
         | Coffee Beans, Cold Brew, Mocha Syrup, Coffee Pods, Creamer
         | French Press, Milk Frother, Coffee Grinder, Espresso Cups, Pour Over Kettle
bbq:       Smokehouse, Texas, Hickory
         | BBQ Sauce, Beef Jerky, Dry Rub, Smoked Almonds, Hot Links
         | Grill Brush, Meat Thermometer, Smoker Box, Skewers, Basting Mop
healthy:   Organic, Vegan, Keto
         | Protein Bar, Chia Seeds, Almond Butter, Quinoa, Kale Chips
         | Blender, Salad Spinner, Juicer, Meal Prep Containers, Spiralizer
tea:       English, Herbal, Chamomile
         | Earl Grey Tea, Wildflower Honey, Shortbread, Lemon Curd, Scones Mix
         | Teapot, Tea Kettle, Tea Infuser, Porcelain Mugs, Tea Tin
mexican:   Oaxaca, Chipotle, Fiesta
         | Tortilla Chips, Hot Sauce, Taco Seasoning, Salsa Verde, Mole Paste
         | Tortilla Press, Molcajete, Taco Holder, Cast Iron Skillet, Citrus Press
breakfast: Maple, Sunrise, Farmhouse
         | Pancake Mix, Granola, Maple Syrup, Oatmeal, Fruit Jam
         | Waffle Maker, Toaster, Egg Poacher, Griddle, Butter Dish
seafood:   Coastal, Atlantic, Nordic
         | Smoked Salmon, Canned Tuna, Anchovies, Seaweed Snacks, Clam Juice
         | Fish Spatula, Oyster Knife, Seafood Pot, Lobster Crackers, Fillet Knife
"""


def _parse_themes(table: str) -> dict[str, tuple[list[str], list[str], list[str]]]:
    """``_THEME_TABLE`` as theme -> (theme words, grocery nouns, kitchen nouns), in table order."""
    themes = {}
    for entry in re.split(r"\n(?=\S)", table.strip()):  # an entry starts at column 0
        name, fields = entry.split(":", 1)
        words, food, kitchen = ([w.strip() for w in part.split(",")] for part in fields.split("|"))
        themes[name] = (words, food, kitchen)
    return themes


THEMES = _parse_themes(_THEME_TABLE)
MODIFIERS = ["Premium", "Classic", "Deluxe", "Family Size", "Gift Set", "Pack of 6", "Large",
             "Mini", "Everyday", "Signature"]
BRAND_SUFFIXES = ["Pantry", "Kitchen", "Goods", "Co.", "Home", "Market"]
REVIEW_TEMPLATES = [
    "Really like this {noun}. Would buy again.",
    "The {noun} arrived quickly and works as described.",
    "Good value {noun}, my family enjoys it.",
    "Not bad, but the {noun} was smaller than expected.",
    "Five stars, best {noun} I have tried.",
]
CATEGORY_ROOT = {"Grocery_and_Gourmet_Food": "Grocery & Gourmet Food",
                 "Home_and_Kitchen": "Home & Kitchen"}

MIN_REVIEWS, MAX_REVIEWS = 2_000, 10_000_000
MIN_OVERLAP, MAX_OVERLAP = 0.01, 0.9


@dataclass
class SyntheticConfig:
    """Knobs of the generator; every one is validated with its allowed range."""

    n_reviews: int = 20_000  # total reviews over both domains, [2e3, 1e7]
    overlap_fraction: float = 0.2  # users active in both domains, [0.01, 0.9]
    n_themes: int = 8  # latent tastes, [2, len(THEMES)]
    seed: int = 0
    domains: tuple[str, str] = ("Grocery_and_Gourmet_Food", "Home_and_Kitchen")
    domain_a_share: float = 0.35  # share of single-domain users living in domain A
    mean_length: float = 8.0  # mean interactions per user (>= 5 so a 5-core keeps most)
    reviews_per_item: float = 25.0  # sets catalog size from n_reviews
    taste_concentration: float = 0.25  # Dirichlet alpha; small = focused tastes
    zipf_exponent: float = 1.05  # popularity long tail
    misleading_text_fraction: float = 0.15  # items whose theme word lies
    missing_meta_fraction: float = 0.0  # reviewed items left out of meta (a real-data defect)
    start_unix: int = 1_451_606_400  # 2016-01-01
    span_days: int = 730
    chunk_users: int = 50_000  # users generated and written per chunk (bounds memory)

    def __post_init__(self) -> None:
        def check(name: str, value: float, low: float, high: float) -> None:
            if not (low <= value <= high):
                raise ValueError(f"{name}={value!r} is out of range: allowed [{low}, {high}]")

        check("n_reviews", self.n_reviews, MIN_REVIEWS, MAX_REVIEWS)
        check("overlap_fraction", self.overlap_fraction, MIN_OVERLAP, MAX_OVERLAP)
        check("n_themes", self.n_themes, 2, len(THEMES))
        check("domain_a_share", self.domain_a_share, 0.05, 0.95)
        check("mean_length", self.mean_length, 5.0, 100.0)
        check("misleading_text_fraction", self.misleading_text_fraction, 0.0, 1.0)
        check("missing_meta_fraction", self.missing_meta_fraction, 0.0, 0.5)
        if len(self.domains) != 2 or self.domains[0] == self.domains[1]:
            raise ValueError(f"domains={self.domains!r}: need two distinct category names")


@dataclass
class GroundTruth:
    """The planted latent structure, returned for tests (never written to the corpus)."""

    item_theme: list[np.ndarray]  # per domain: (n_items,) theme index
    user_taste: np.ndarray  # (n_users, n_themes)
    user_kind: np.ndarray  # (n_users,) 0 = A only, 1 = B only, 2 = both
    files: dict[str, Path] = field(default_factory=dict)
    n_reviews_written: int = 0


def _gzip_writer(path: Path):
    """Text gzip stream with a fixed header (mtime 0, no name) so bytes are reproducible."""
    raw = path.open("wb")
    return raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)


def _item_ids(domain_index: int, n: int) -> list[str]:
    return [f"B{domain_index}{i:08X}" for i in range(n)]


def _catalog(cfg: SyntheticConfig, rng: np.random.Generator, d: int, n_items: int):
    """Themes, popularity and meta records for one domain's items."""
    themes = list(THEMES)[: cfg.n_themes]
    item_theme = rng.integers(0, cfg.n_themes, size=n_items)
    shown_theme = item_theme.copy()
    lie = rng.random(n_items) < cfg.misleading_text_fraction
    shown_theme[lie] = rng.integers(0, cfg.n_themes, size=int(lie.sum()))
    ranks = rng.permutation(n_items)
    popularity = 1.0 / np.power(ranks + 1.0, cfg.zipf_exponent)
    category = cfg.domains[d]
    meta = []
    ids = _item_ids(d, n_items)
    for i in range(n_items):
        words, food, kitchen = THEMES[themes[shown_theme[i]]]
        nouns = food if d == 0 else kitchen
        word = words[rng.integers(len(words))]
        noun = nouns[rng.integers(len(nouns))]
        brand = f"{words[rng.integers(len(words))]} {BRAND_SUFFIXES[rng.integers(len(BRAND_SUFFIXES))]}"
        title = f"{brand} {word} {noun}, {MODIFIERS[rng.integers(len(MODIFIERS))]}"
        meta.append({
            "asin": ids[i],
            "title": title,
            "category": [CATEGORY_ROOT.get(category, category), word, noun],
            "brand": brand,
            "description": [f"<p>{word} style {noun.lower()} for everyday use.</p>"],
            "main_cat": CATEGORY_ROOT.get(category, category),
        })
    return item_theme, popularity, meta


def _theme_samplers(item_theme: np.ndarray, popularity: np.ndarray, n_themes: int):
    """Per theme: item indices and the cumulative popularity used for inverse-CDF draws."""
    out = []
    for t in range(n_themes):
        idx = np.flatnonzero(item_theme == t)
        if idx.size == 0:  # tiny catalogs: fall back to the whole catalog
            idx = np.arange(item_theme.size)
        cdf = np.cumsum(popularity[idx])
        out.append((idx, cdf / cdf[-1]))
    return out


def _draw_items(rng, samplers, themes: np.ndarray) -> np.ndarray:
    items = np.empty(themes.size, dtype=np.int64)
    for t, (idx, cdf) in enumerate(samplers):
        mask = themes == t
        if mask.any():
            u = rng.random(int(mask.sum()))
            items[mask] = idx[np.minimum(np.searchsorted(cdf, u), idx.size - 1)]
    return items


def _review_time(ts: np.ndarray) -> list[str]:
    """Amazon 2018 ``reviewTime`` strings, e.g. "09 4, 2015"."""
    days = ts.astype("datetime64[s]").astype("datetime64[D]")
    years = days.astype("datetime64[Y]").astype(int) + 1970
    months = days.astype("datetime64[M]").astype(int) % 12 + 1
    dom = (days - days.astype("datetime64[M]")).astype(int) + 1
    return [f"{m:02d} {d}, {y}" for m, d, y in zip(months, dom, years, strict=True)]


@dataclass
class _World:
    """The latent structure every chunk of reviews is drawn from."""

    n_items: list[int]  # per domain
    catalogs: list[tuple]  # per domain: (item_theme, popularity, meta records)
    samplers: list[list]  # per domain, per theme: (item indices, popularity CDF)
    item_ids: list[list[str]]
    nouns: list[list[str]]  # per domain, per item: its noun
    taste: np.ndarray  # (n_users, n_themes)
    kind: np.ndarray  # (n_users,) 0 = A only, 1 = B only, 2 = both


def _world(cfg: SyntheticConfig, rng: np.random.Generator) -> _World:
    """Catalogs of both domains, then every user's taste and kind (draws in that order)."""
    n_users = max(50, int(round(cfg.n_reviews / cfg.mean_length)))
    n_items = [
        max(60, int(cfg.n_reviews * share / cfg.reviews_per_item))
        for share in (cfg.domain_a_share, 1 - cfg.domain_a_share)
    ]
    catalogs = [_catalog(cfg, rng, d, n_items[d]) for d in range(2)]
    taste = rng.dirichlet(np.full(cfg.n_themes, cfg.taste_concentration), size=n_users)
    u = rng.random(n_users)
    kind = np.where(u < cfg.overlap_fraction, 2,
                    np.where(u < cfg.overlap_fraction + (1 - cfg.overlap_fraction) * cfg.domain_a_share, 0, 1))
    return _World(n_items, catalogs, [_theme_samplers(c[0], c[1], cfg.n_themes) for c in catalogs],
                  [_item_ids(d, n_items[d]) for d in range(2)],
                  [[m["category"][2] for m in c[2]] for c in catalogs], taste, kind)


def _events(cfg: SyntheticConfig, rng: np.random.Generator, world: _World, users: np.ndarray):
    """One chunk's review events: owner, domain, theme, time, rating and template of each."""
    lengths = 5 + rng.geometric(1.0 / (cfg.mean_length - 4.0), size=users.size) - 1
    lengths = np.minimum(lengths, 200)
    owner = np.repeat(users, lengths)  # (n_events,)
    # Overlap users put each event in A or B at random; single-domain users stay home.
    dom = np.where(world.kind[owner] == 2, rng.integers(0, 2, size=owner.size), world.kind[owner])
    cum = np.cumsum(world.taste[owner], axis=1)
    theme = (rng.random(owner.size)[:, None] > cum).sum(axis=1).clip(0, cfg.n_themes - 1)
    gaps = rng.exponential(5 * 86_400, size=owner.size).astype(np.int64) + 3_600
    first = cfg.start_unix + rng.integers(0, cfg.span_days * 86_400, size=users.size)
    seq_start = np.repeat(np.cumsum(lengths) - lengths, lengths)
    csum = np.cumsum(gaps)
    ts = np.repeat(first, lengths) + csum - csum[seq_start] + gaps[seq_start]
    match = world.taste[owner, theme] > 0.3
    rating = np.where(match, rng.choice([4.0, 5.0], size=owner.size, p=[0.3, 0.7]),
                      rng.choice([1.0, 2.0, 3.0, 4.0, 5.0], size=owner.size))
    templates = rng.integers(0, len(REVIEW_TEMPLATES), size=owner.size)
    return owner, dom, theme, ts, rating, templates


def _review_lines(world: _World, d: int, owner, items, times, rating, templates) -> list[str]:
    """One domain's reviews of a chunk as JSON lines in the 2018 field names."""
    lines = []
    for uid, it, t, rt, r, tpl in zip(owner, items, times, _review_time(times), rating, templates,
                                      strict=True):
        noun = world.nouns[d][it].lower()
        lines.append(json.dumps({
            "overall": float(r), "verified": True, "reviewTime": rt,
            "reviewerID": f"A{uid:012X}", "asin": world.item_ids[d][it],
            "reviewText": REVIEW_TEMPLATES[tpl].format(noun=noun),
            "summary": noun.title(), "unixReviewTime": int(t),
        }))
    return lines


def _write_reviews(cfg: SyntheticConfig, rng: np.random.Generator, world: _World,
                   paths: list[Path], reviewed: list[np.ndarray]) -> int:
    """Stream reviews chunk by chunk until the budget is spent; returns how many were written."""
    streams = [_gzip_writer(path) for path in paths]
    written = 0
    try:
        for start in range(0, world.taste.shape[0], cfg.chunk_users):
            users = np.arange(start, min(world.taste.shape[0], start + cfg.chunk_users))
            owner, dom, theme, ts, rating, templates = _events(cfg, rng, world, users)
            for d in range(2):
                mask = dom == d
                if not mask.any():
                    continue
                items = _draw_items(rng, world.samplers[d], theme[mask])
                reviewed[d][items] = True
                lines = _review_lines(world, d, owner[mask], items, ts[mask], rating[mask],
                                      templates[mask])
                streams[d][1].write(("\n".join(lines) + "\n").encode())
            written += int(owner.size)
            if written >= cfg.n_reviews:
                break
    finally:
        for raw, gz in streams:
            gz.close()
            raw.close()
    return written


def _write_meta(cfg: SyntheticConfig, rng: np.random.Generator, world: _World, d: int,
                path: Path, reviewed: np.ndarray) -> None:
    """One domain's item metadata; ``missing_meta_fraction`` of the reviewed items left out."""
    drop = rng.random(world.n_items[d]) < cfg.missing_meta_fraction
    raw, gz = _gzip_writer(path)
    try:
        for i, record in enumerate(world.catalogs[d][2]):
            if drop[i] and reviewed[i]:
                continue
            gz.write((json.dumps(record) + "\n").encode())
    finally:
        gz.close()
        raw.close()


def generate(cfg: SyntheticConfig, out_dir: Path) -> GroundTruth:
    """Write the two categories' review and meta files into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    world = _world(cfg, rng)
    truth = GroundTruth([c[0] for c in world.catalogs], world.taste, world.kind)
    files = {f"reviews_{d}": out_dir / f"{category}.json.gz" for d, category in enumerate(cfg.domains)}
    reviewed = [np.zeros(world.n_items[d], dtype=bool) for d in range(2)]
    written = _write_reviews(cfg, rng, world, [files["reviews_0"], files["reviews_1"]], reviewed)
    for d, category in enumerate(cfg.domains):
        files[f"meta_{d}"] = out_dir / f"meta_{category}.json.gz"
        _write_meta(cfg, rng, world, d, files[f"meta_{d}"], reviewed[d])
    truth.files = files
    truth.n_reviews_written = written
    return truth
