"""Small stand-ins for the upstream tables of the pseudo stage, published as stub assets."""

import dagster as dg
import polars as pl

from pipeline.io_managers import VersionedIOManager, VersionStore

N_ITEMS = {"A": 12, "B": 10}
NOUN = {"A": "Sauce", "B": "Pan"}
WORDS = ["Tuscan", "Kyoto", "Bakery", "Espresso", "Texas", "Organic"]
SINGLE_USERS = 5  # per domain, train, single-domain
OVERLAP_USERS = 4  # train, both domains: the prompts' in-context examples


def title(domain: str, index: int) -> str:
    return f"{WORDS[index % len(WORDS)]} {NOUN[domain]} {index}"


def catalog_table() -> pl.DataFrame:
    rows = [{"item": f"{d}{i}", "domain": d, "index": i, "title": title(d, i),
             "text": f"{title(d, i)} | cat | brand"} for d, n in N_ITEMS.items() for i in range(n)]
    return pl.DataFrame(rows, schema_overrides={"index": pl.Int32})


def sequences_table() -> pl.DataFrame:
    """Single-domain users ``a0..``/``b0..`` (3 items each) and overlap users ``o0..``."""
    rows = []
    for domain in ("A", "B"):
        for u in range(SINGLE_USERS):
            items = [(u + k) % N_ITEMS[domain] for k in range(3)]
            rows.append({"user": f"{domain.lower()}{u}", "split": "train", "kind": "single",
                         "items": items, "domains": [domain] * 3, "timestamps": [0, 1, 2],
                         "target_item": None, "target_domain": None, "source_domain": domain})
    for u in range(OVERLAP_USERS):
        rows.append({"user": f"o{u}", "split": "train", "kind": "overlap", "items": [u, u + 1, u],
                     "domains": ["A", "A", "B"], "timestamps": [0, 1, 2], "target_item": u + 2,
                     "target_domain": "B", "source_domain": None})
    return pl.DataFrame(rows, schema_overrides={"items": pl.List(pl.Int32), "target_item": pl.Int32,
                                                "target_domain": pl.String, "source_domain": pl.String})


def table_asset(name: str, table: pl.DataFrame) -> dg.AssetsDefinition:
    """An asset ``name`` that publishes ``table`` as it is."""

    @dg.asset(name=name, code_version="stub")
    def stub(store: VersionStore) -> dg.MaterializeResult:
        return store.publish(table)

    return stub


def storage(root) -> dict:
    """The ``store`` and ``io_manager`` resources over ``root``."""
    store = VersionStore(root=str(root))
    return {"store": store, "io_manager": VersionedIOManager(store=store)}
