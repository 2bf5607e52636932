"""Time window and iterative k-core (paper section 4.1.1), on the interactions of a pair.

Why k-core this way: the k-core of a bipartite graph is unique, so removing every
user and item below ``k`` at once, repeatedly, reaches the same fixed point as any
other removal order. Keys are encoded once to dense integers (see
:func:`dense_ids`). The rounds then peel: degrees are counted once, and each round
subtracts only the rows that died in it, so a round costs two lookups of a boolean
table per row instead of two full ``bincount`` passes and three array compactions
(10M rows, 9 rounds: 0.46 s instead of 1.47 s). An item's key is (item, domain); a
user's degree counts both domains.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from models.data.errors import UnusableDataError

DAY_S = 86_400
_CHECK_SEED = 0x5EED_C0DE  # the second, independent hash that checks the first


def apply_window(interactions: pl.DataFrame, window_days: int | None) -> pl.DataFrame:
    """Keep interactions newer than (newest timestamp of the pair - ``window_days``)."""
    if window_days is None or interactions.height == 0:
        return interactions
    newest = interactions["timestamp"].max()
    return interactions.filter(pl.col("timestamp") > newest - window_days * DAY_S)


def _dictionary_ids(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(values, pa.ChunkedArray):  # one array, so one dictionary
        values = values.combine_chunks()
    return pc.dictionary_encode(values).indices.to_numpy(zero_copy_only=False).astype(np.intp)


def _hash(keys: pl.Series, seed: int) -> pl.Series:
    return keys.hash(seed=seed)


def dense_ids(keys: pl.Series) -> np.ndarray:
    """Dense ids (0..distinct-1, numpy's index type) of a string column.

    Why hashing first: a hash table over 10M strings costs 1.5 s of one core (Arrow's
    dictionary encoding, the cheapest exact string table measured here), while polars
    hashes them on all cores in 0.02 s and Arrow encodes the 64-bit hashes in 0.5 s.
    That 0.5 s is memory latency: 2M distinct users do not fit in cache, so nearly
    every row misses it. Grouping rows by hash bits first, so that each group's table
    fits, saved 0.1 s on users and nothing on items: the regrouping reads the rows at
    random too.

    Two different keys with the same hash would share an id, so 32 bits of a second
    hash with an independent seed are compared within each id; any disagreement
    falls back to encoding the strings themselves. Ids can then be wrong only if two
    keys collide in 96 bits at once (about n^2 / 2^97: 10^-15 for 10M keys). The
    index type (int64) is kept throughout because numpy casts any other index array
    to it on every lookup.
    """
    if keys.null_count():
        raise ValueError(f"column {keys.name!r} has {keys.null_count()} nulls; keys must be set")
    ids = _dictionary_ids(_hash(keys, 0).to_arrow())  # (n,)
    check = _hash(keys, _CHECK_SEED).to_numpy().astype(np.uint32)  # (n,) low 32 bits
    seen = np.empty(int(ids.max(initial=-1)) + 1, dtype=np.uint32)  # (n_ids,)
    seen[ids] = check  # one row's check value per id: the last write wins
    if not np.array_equal(seen[ids], check):
        return _dictionary_ids(keys.rechunk().to_arrow())
    return ids


def _codes(interactions: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Integer keys: user, and (item, domain) as item id * 2 + domain bit.

    The two columns are encoded in two threads: polars and Arrow release the GIL.
    """
    with ThreadPoolExecutor(max_workers=2) as pool:
        users = pool.submit(dense_ids, interactions["user"])
        items = pool.submit(dense_ids, interactions["item"])
        domain_b = (interactions["domain"] == "B").to_numpy()
        return users.result(), items.result() * 2 + domain_b


def peel(users: np.ndarray, items: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """Rows of the k-core as a boolean mask over the input rows, and the rounds it took.

    ``users``/``items``: (n,) dense integer keys. A round drops every row whose user or
    item is below ``k``, then subtracts just those rows from the degrees.
    """
    user_deg, item_deg = np.bincount(users), np.bincount(items)  # (n_users,), (n_items,)
    user_ok, item_ok = user_deg >= k, item_deg >= k
    alive = user_ok[users] & item_ok[items]  # (n,) bool
    dead = np.flatnonzero(~alive)
    rounds = 1
    while dead.size:
        user_deg -= np.bincount(users[dead], minlength=user_deg.size)
        item_deg -= np.bincount(items[dead], minlength=item_deg.size)
        user_ok &= user_deg >= k
        item_ok &= item_deg >= k
        still = alive & user_ok[users] & item_ok[items]
        dead = np.flatnonzero(alive & ~still)
        alive = still
        rounds += 1
    return alive, rounds


def kcore(interactions: pl.DataFrame, k: int) -> tuple[pl.DataFrame, int]:
    """Reduce to the k-core (row order kept); also return the number of rounds.

    A round is one pass that finds rows to drop; the last round finds none.
    """
    if interactions.height == 0:
        return interactions, 0
    users, items = _codes(interactions)
    alive, rounds = peel(users, items, k)
    return interactions.filter(pl.Series(alive)), rounds


def kcore_violations(interactions: pl.DataFrame, k: int) -> dict[str, int]:
    """Users and items below ``k`` interactions (both 0 for a k-core), for the asset check."""
    users = interactions.group_by("user").len()
    items = interactions.group_by("item", "domain").len()
    return {
        "users_below_k": int((users["len"] < k).sum()),
        "items_below_k": int((items["len"] < k).sum()),
        "min_user_degree": int(users["len"].min() or 0),
        "min_item_degree": int(items["len"].min() or 0),
    }


def overlapping_users(interactions: pl.DataFrame) -> int:
    """Users with interactions in both domains."""
    per_user = interactions.group_by("user").agg(pl.col("domain").n_unique())
    return int((per_user["domain"] == 2).sum())


def filter_pair(interactions: pl.DataFrame, window_days: int | None,
                k: int) -> tuple[pl.DataFrame, dict]:
    """Window then k-core; a pair left without overlapping users is an error.

    Without overlapping users there is no training anchor and no cold-start user
    to evaluate, so continuing would only produce empty downstream tables.
    """
    windowed = apply_window(interactions, window_days)
    core, rounds = kcore(windowed, k)
    overlap = overlapping_users(core)
    stats = {"input": interactions.height, "after_window": windowed.height,
             "after_kcore": core.height, "kcore_rounds": rounds,
             "fraction_kept": round(core.height / max(interactions.height, 1), 6),
             "users": core["user"].n_unique(), "items": core.select("item", "domain").n_unique(),
             "overlapping_users": overlap}
    if overlap == 0:
        raise UnusableDataError(
            f"no overlapping users left after filtering (window_days={window_days}, k_core={k}): "
            f"{interactions.height} interactions -> {windowed.height} in the window -> "
            f"{core.height} in the {k}-core, none of whose users has both domains; "
            "widen the window or lower k_core")
    return core, stats


def filter_items(items: pl.DataFrame, interactions: pl.DataFrame) -> pl.DataFrame:
    """Keep the items that still have interactions after filtering (row order kept)."""
    kept = interactions.select("item", "domain").unique()
    return items.join(kept, on=["item", "domain"], how="semi", maintain_order="left")
