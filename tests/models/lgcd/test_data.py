import dataclasses

import pytest

from models.lgcd.config import LGCDConfig
from models.lgcd.data import (
    CyclicSampler,
    TrainBatches,
    collate,
    every_target_rows,
    row_from_record,
    rows_from_records,
)
from tests.models.lgcd.fakes import planted_problem


def _pseudo_record(**overrides):
    rec = dict(user="u1", items=[3, 7, 4, 9, 5], domains=["A", "B", "A", "B", "A"],
               is_pseudo=[False, True, False, True, False], source_domain="A", kind="single",
               split="train")
    return {**rec, **overrides}


def test_pseudo_row_holds_out_last_pseudo_item():
    row = row_from_record(_pseudo_record())
    assert row.kind == "pseudo" and row.direction == "AB"
    assert row.target_item == 9
    assert row.items == (3, 7, 4, 5) and row.is_pseudo == (False, True, False, False)


def test_pseudo_row_keeps_given_target():
    row = row_from_record(_pseudo_record(target_item=2, target_domain="B"))
    assert row.target_item == 2 and len(row.items) == 5


def test_collate_splits_source_target_and_masks_pseudo_ids():
    overlap = row_from_record(dict(user="o", items=[1, 2, 3, 4], domains=["B", "A", "B", "A"],
                                   source_domain="A", target_domain="B", target_item=6,
                                   kind="overlap", split="train"))
    pseudo = row_from_record(_pseudo_record(items=[3, 7, 4, 9, 5, 8],
                                            domains=["A", "B", "A", "B", "A", "B"],
                                            is_pseudo=[False, True, False, True, False, True]))
    batch = collate([overlap, pseudo], weights=[0.25, 0.75], max_len=50)
    assert list(batch.paths) == ["AB"]
    b = batch.paths["AB"]
    assert b.src_items[b.src_mask].tolist() == [2, 4, 3, 4, 5]  # real source items only
    assert b.tgt_items[0][b.tgt_mask[0]].tolist() == [1, 3]  # overlap: real target history
    assert b.tgt_items[1][b.tgt_mask[1]].tolist() == [7, 9]  # pseudo texts form h_tgt
    assert b.tgt_id_mask[0].tolist()[:2] == [True, True]
    assert b.tgt_id_items[1].tolist() == [0, 0] and b.has_tgt_ids.tolist() == [True, False]
    assert b.target.tolist() == [6, 8]
    assert b.is_overlap.tolist() == [True, False] and b.is_pseudo.tolist() == [False, True]
    assert b.weight.tolist() == [0.25, 0.75] and b.any_tgt_ids


def test_collate_truncates_to_most_recent_and_fills_empty_rows():
    row = row_from_record(dict(user="e", items=list(range(10)), domains=["A"] * 10,
                               source_domain="A", target_domain="B", target_item=1,
                               kind="single", split="test"))
    b = collate([row], max_len=4).paths["AB"]
    assert b.src_items[0].tolist() == [6, 7, 8, 9]
    assert b.tgt_mask.tolist() == [[True]] and b.has_tgt.tolist() == [False]  # dummy slot
    assert not b.any_tgt_ids


@pytest.mark.parametrize("bad, match", [
    (dict(is_pseudo=[False, True, True, True, False]), "pseudo items must be in the target"),
    (dict(domains=["A", "B", "C", "B", "A"]), "domains must be"),
    (dict(items=[1, 2]), "differ in length"),
    (dict(is_pseudo=[False] * 5), "no target item"),
])
def test_bad_records_name_the_user(bad, match):
    with pytest.raises(ValueError, match=match):
        row_from_record(_pseudo_record(**bad))


def test_unusable_records_can_be_collected_instead_of_raised():
    skipped = []
    rows = rows_from_records([_pseudo_record(), _pseudo_record(user="bad", is_pseudo=[False] * 5)],
                             skipped=skipped)
    assert [r.user for r in rows] == ["u1"]
    assert skipped[0][0] == "bad" and "no target item" in skipped[0][1]


def test_grounding_output_rows_are_pseudo_rows():
    """The pseudo stage's table (no kind/split/target_item columns) reads as pseudo rows."""
    rec = dict(user="g", source_domain="B", target_domain="A", items=[4, 11, 5, 12],
               domains=["B", "A", "B", "A"], is_pseudo=[False, True, False, True],
               pseudo_items=[11, 12], fallback=False)
    row = row_from_record(rec)
    assert (row.kind, row.direction, row.target_item, row.items) == ("pseudo", "BA", 12,
                                                                     (4, 11, 5))


def test_row_needs_real_source_item():
    with pytest.raises(ValueError, match="no real source-domain"):
        row_from_record(dict(user="x", items=[1], domains=["B"], is_pseudo=[True],
                             source_domain="A", target_item=3))


def test_cyclic_sampler_covers_every_user_each_cycle():
    sampler = CyclicSampler(n=10, batch_size=4, seed=0)
    flat = [int(i) for s in range(5) for i in sampler.batch(s)]  # 20 = two cycles
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:]) == list(range(10))
    assert flat[:10] != flat[10:]  # reshuffled per cycle
    assert CyclicSampler(10, 4, 0).batch(3).tolist() == sampler.batch(3).tolist()


@pytest.fixture(scope="module")
def train_rows():
    records, _, _ = planted_problem(n_pseudo=100, n_overlap=10, n_eval=0)
    return rows_from_records(records)


def _signature(b, i):
    return (int(b.target[i]), tuple(b.src_items[i][b.src_mask[i]].tolist()))


@pytest.mark.parametrize("unit, pseudo_weight, steps, w_pseudo", [
    ("pseudo", 0.5, 7, 0.5),  # the paper's reading: ceil(100 pseudo / 16), equal streams
    ("overlap", None, 3, 100 / 110),  # default: ceil(10 overlap / 4), the pseudo row share
])
def test_every_training_step_contains_real_overlap(train_rows, unit, pseudo_weight, steps,
                                                   w_pseudo):
    cfg = LGCDConfig(batch_size=16, overlap_batch_size=4, epoch_unit=unit,
                     pseudo_weight=pseudo_weight)
    batches = TrainBatches(train_rows, cfg)
    assert batches.steps_per_epoch == steps
    overlap_users = {_signature(collate([r]).paths[r.direction], 0)
                     for r in train_rows if r.kind == "overlap"}
    seen, n_steps, pseudo_seen = set(), 0, set()
    for epoch in range(2):
        for batch in batches.epoch(epoch):
            n_steps += 1
            assert batch.n_overlap == 4  # every single step holds real overlap
            n_pseudo = sum(int(b.is_pseudo.sum()) for b in batch.paths.values())
            assert n_pseudo == 16 or (unit == "pseudo" and n_pseudo == 100 % 16)
            total = sum(float(b.weight.sum()) for b in batch.paths.values())
            assert total == pytest.approx(1.0)
            for b in batch.paths.values():
                assert b.weight[b.is_overlap].tolist() == pytest.approx(
                    [(1 - w_pseudo) / 4] * int(b.is_overlap.sum()))
                assert b.weight[b.is_pseudo].tolist() == pytest.approx(
                    [w_pseudo / n_pseudo] * int(b.is_pseudo.sum()))
                seen.update(_signature(b, i) for i in range(len(b)) if b.is_overlap[i])
                pseudo_seen.update(_signature(b, i) for i in range(len(b)) if b.is_pseudo[i])
    assert n_steps == 2 * steps and seen == overlap_users  # cycles through all of them
    assert len(pseudo_seen) >= min(100, 2 * steps * 16) * 0.9  # pseudo rows cycle too


def test_pseudo_weight_out_of_range_is_a_config_error():
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="pseudo_weight"):
            LGCDConfig(pseudo_weight=bad)


def test_without_cyclic_overlap_rows_appear_once_per_epoch(train_rows):
    cfg = LGCDConfig(batch_size=16, overlap_batch_size=4, overlap_cyclic=False)
    batches = TrainBatches(train_rows, cfg)
    assert batches.steps_per_epoch == 7
    total = sum(b.n_overlap for b in batches.epoch(0))
    assert total == 10


def test_batches_are_deterministic_by_seed_and_epoch(train_rows):
    cfg = LGCDConfig(batch_size=16, overlap_batch_size=4)

    def users(c, epoch):
        return [b.target.tolist() + b.src_items.flatten().tolist()
                for batch in TrainBatches(train_rows, c).epoch(epoch) for b in batch.paths.values()]

    assert users(cfg, 1) == users(cfg, 1)
    assert users(cfg, 1) != users(cfg, 2)
    assert users(cfg, 1) != users(dataclasses.replace(cfg, seed=5), 1)


def test_train_batches_reject_eval_rows():
    records, _, _ = planted_problem(n_pseudo=4, n_overlap=2, n_eval=2)
    with pytest.raises(ValueError, match="must be 'overlap' or 'pseudo'"):
        TrainBatches(rows_from_records(records), LGCDConfig())


def test_overlap_only_training_still_batches(train_rows):
    overlap = [r for r in train_rows if r.kind == "overlap"]
    batches = TrainBatches(overlap, LGCDConfig(overlap_batch_size=4))
    assert batches.steps_per_epoch == 3
    assert [b.n_overlap for b in batches.epoch(0)] == [4, 4, 4]


def test_an_overlap_epoch_also_passes_once_over_the_pseudo_users(train_rows):
    """10 overlap users in batches of 2: 5 steps, so 20 of the 100 pseudo users a step."""
    batches = TrainBatches(train_rows, LGCDConfig(batch_size=64, overlap_batch_size=2))
    assert batches.steps_per_epoch == 5
    seen = []
    for batch in batches.epoch(0):
        for b in batch.paths.values():
            seen += [_signature(b, i) for i in range(len(b)) if b.is_pseudo[i]]
    pseudo = [_signature(collate([r]).paths[r.direction], 0)
              for r in train_rows if r.kind == "pseudo"]
    assert sorted(seen) == sorted(pseudo)  # each pseudo user once


def _overlap_row():
    return row_from_record(dict(user="o", items=[1, 2, 3, 4, 5], domains=["A", "A", "B", "A", "B"],
                                source_domain="B", target_domain="A", target_item=6,
                                kind="overlap", split="train"))


def test_every_target_rows_are_the_cross_domain_moments_of_a_user():
    """A history A A B A B -> A: each item after one of the other domain is a target."""
    rows = every_target_rows(_overlap_row())
    got = [(r.items, r.source_domain, r.target_domain, r.target_item) for r in rows]
    assert got == [((1, 2), "A", "B", 3),  # the first two A items precede no B item
                   ((1, 2, 3), "B", "A", 4),
                   ((1, 2, 3, 4), "A", "B", 5),
                   ((1, 2, 3, 4, 5), "B", "A", 6)]
    assert rows[-1] == _overlap_row()  # the last target is the row itself
    assert all(r.kind == "overlap" and not any(r.is_pseudo) for r in rows)
    with pytest.raises(ValueError, match="only real overlap rows"):
        every_target_rows(row_from_record(_pseudo_record()))


def test_every_target_epochs_keep_their_length_and_move_through_the_pool(train_rows):
    """An epoch draws one overlap row per user; successive epochs see other targets."""
    last = TrainBatches(train_rows, LGCDConfig(overlap_batch_size=4))
    every = TrainBatches(train_rows, LGCDConfig(overlap_batch_size=4, overlap_targets="every"))
    n_users = sum(r.kind == "overlap" for r in train_rows)
    assert len(every.overlap) > n_users == len(last.overlap)
    assert every.steps_per_epoch == last.steps_per_epoch
    assert every.pseudo_weight == pytest.approx(last.pseudo_weight)

    def targets(epoch):
        return {(d, int(b.row[i]), int(b.target[i])) for batch in every.epoch(epoch)
                for d, b in batch.paths.items() for i in range(len(b)) if b.is_overlap[i]}
    assert targets(0) != targets(1)
    assert targets(0) == targets(0)  # a pure function of (seed, epoch)


def test_each_direction_keeps_its_share_of_a_step_whatever_its_pool_holds(train_rows):
    """Every moment for Food targets (A) only: A's pool grows, B's rows per step stay."""
    users = [r for r in train_rows if r.kind == "overlap"]
    share = {d: sum(r.target_domain == d for r in users) for d in "AB"}
    cfg = LGCDConfig(overlap_batch_size=4)
    last = TrainBatches(train_rows, cfg)
    mixed = TrainBatches(train_rows, dataclasses.replace(
        cfg, overlap_targets={"A": "every", "B": "last"}))
    assert len(mixed.pools["A"]) > share["A"] == len(last.pools["A"])
    assert mixed.pools["B"] == last.pools["B"] and len(mixed.pools["B"]) == share["B"]
    assert all(r.target_domain == d for d, pool in mixed.pools.items() for r in pool)

    def per_step(batches):
        return [{d: int(b.is_overlap.sum()) for d, b in batch.paths.items()}
                for batch in batches.epoch(0)]
    want = round(4 * share["B"] / len(users))
    assert all(step.get("AB", 0) == want for step in per_step(mixed))  # AB: Kitchen targets
    assert per_step(mixed) == per_step(last)  # same rows per direction and step
    assert mixed.steps_per_epoch == last.steps_per_epoch


def test_per_domain_settings_take_one_value_or_a_mapping():
    cfg = LGCDConfig(overlap_targets="every", item_residual=True)
    assert cfg.overlap_targets == {"A": "every", "B": "every"}
    assert cfg.item_residual == {"A": True, "B": True}
    assert LGCDConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="overlap_targets\\['B'\\]='all'"):
        LGCDConfig(overlap_targets={"A": "every", "B": "all"})
    with pytest.raises(ValueError, match="item_residual=.*mapping of the target domains"):
        LGCDConfig(item_residual={"A": True})
    with pytest.raises(ValueError, match="values must be true or false"):
        LGCDConfig(item_residual={"A": 1, "B": 0})
