import dataclasses

import pytest
import torch

from models.encoders.sequence import DomainEncoder, EncoderConfig
from models.lgcd.config import VARIANTS, LGCDConfig
from models.lgcd.data import LGCDBatch, TrainBatches, collate, row_from_record, rows_from_records
from models.lgcd.model import LGCD
from models.lgcd.training import CandidateEvaluator, train_lgcd
from tests.models.lgcd.fakes import fake_encoders, planted_problem, pretrained_fake_encoders

D = 16
SMALL = dict(d=D, T=10, batch_size=32, overlap_batch_size=8)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def planted():
    records, text, n_items = planted_problem(text_dim=D, seed=0)
    rows = rows_from_records(records)
    return ([r for r in rows if r.kind != "eval"], [r for r in rows if r.kind == "eval"], text,
            n_items)


def real_encoders(n_items: int = 30, text_dim: int = 12, seed: int = 0):
    torch.manual_seed(seed)
    return {dom: DomainEncoder(EncoderConfig(n_items=n_items, text_dim=text_dim, d=D, n_heads=2,
                                             n_layers=1, dropout=0.1),
                               item_text=torch.randn(n_items, text_dim))
            for dom in ("A", "B")}


def _pseudo_and_overlap(pseudo_item: int, real_item: int):
    pseudo = row_from_record(dict(user="p", items=[1, pseudo_item, 2, 5, 3],
                                  domains=["A", "B", "A", "B", "A"],
                                  is_pseudo=[False, True, False, True, False],
                                  source_domain="A", kind="single", split="train"))
    overlap = row_from_record(dict(user="o", items=[4, real_item, 6], domains=["A", "B", "A"],
                                   source_domain="A", target_domain="B", target_item=7,
                                   kind="overlap", split="train"))
    return collate([pseudo, overlap]).paths["AB"]


@pytest.mark.parametrize("kind", ["fake", "real"])
def test_pseudo_items_are_masked_from_the_id_encoder(kind):
    encoders = fake_encoders({"A": 30, "B": 30}, d=D) if kind == "fake" else real_encoders()
    model = LGCD(LGCDConfig(**SMALL, cross_id=True), encoders).eval()
    with torch.no_grad():  # make the cross-domain ID map live, so a leak would show
        model.paths["AB"].cross_id.weight.normal_()
        h_id = {}
        for item in (8, 20):
            b = _pseudo_and_overlap(pseudo_item=item, real_item=item)
            h_cond, h_id[item], _ = model.condition("AB", b)
    # pseudo user (row 0): changing the pseudo item's ID changes nothing
    torch.testing.assert_close(h_id[8][0], h_id[20][0], rtol=0, atol=0)
    # real overlap user (row 1): its real target-domain item does reach h_ID
    assert not torch.allclose(h_id[8][1], h_id[20][1])


def test_default_condition_reads_source_items_only_as_at_test_time():
    """cross_id off: an overlap row's real target-domain IDs do not reach h_cond."""
    model = LGCD(LGCDConfig(**SMALL), fake_encoders({"A": 30, "B": 30}, d=D)).eval()
    assert not hasattr(model.paths["AB"], "cross_id")
    with torch.no_grad():
        conds = [model.condition("AB", _pseudo_and_overlap(8, item))[0] for item in (8, 20)]
    torch.testing.assert_close(conds[0], conds[1], rtol=0, atol=0)


def test_pseudo_items_text_forms_the_target_feature():
    model = LGCD(LGCDConfig(**SMALL), fake_encoders({"A": 30, "B": 30}, d=D)).eval()
    with torch.no_grad():
        t8 = model.target_feature("AB", _pseudo_and_overlap(8, 8))
        t20 = model.target_feature("AB", _pseudo_and_overlap(20, 8))
    assert not torch.allclose(t8[0], t20[0])


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_builds_and_trains_one_step(name, planted):
    train, _, text, _ = planted
    cfg = LGCDConfig.variant(name, **SMALL)
    torch.manual_seed(0)
    model = LGCD(cfg, pretrained_fake_encoders(text))
    batch = next(TrainBatches(train, cfg).epoch(0))
    outputs, losses = model(batch)
    assert set(losses) == {"diff", "guess", "align", "rec", "total"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert set(outputs) == {"AB", "BA"}
    assert outputs["AB"].logits.shape == (len(batch.paths["AB"]), 48)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt.zero_grad()
    losses["total"].backward()
    opt.step()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("paths.") for k in changed)
    assert not any(k.startswith("encoders.") for k in changed)  # frozen by default
    zero = {"wo_diffusion": ("diff", "guess", "align"), "wo_alignment": ("align",),
            "wo_guesser": ("guess",), "wo_pseudo_diffusion": ("align",)}.get(name, ())
    for term in zero:
        assert losses[term].item() == 0.0
    for term in {"diff", "guess", "align", "rec"} - set(zero):
        assert losses[term].item() > 0.0


def test_finetuning_trains_the_real_encoders():
    encoders = real_encoders()
    model = LGCD(LGCDConfig(**SMALL, finetune_encoders=True), encoders)
    model.train()
    assert model.encoders.training
    b = _pseudo_and_overlap(8, 9)
    _, losses = model(LGCDBatch({"AB": b}))
    losses["total"].backward()
    assert encoders["A"].item_emb.weight.grad is not None
    frozen = LGCD(LGCDConfig(**SMALL), real_encoders()).train()
    assert not frozen.encoders.training  # frozen encoders stay in eval mode (no dropout)


def test_overlap_and_pseudo_losses_follow_equations_26_and_27():
    cfg = LGCDConfig(**SMALL)
    torch.manual_seed(0)
    model = LGCD(cfg, fake_encoders({"A": 30, "B": 30}, d=D))
    b = _pseudo_and_overlap(8, 9)
    _, per_row = model._path_forward("AB", b)
    assert per_row["align"][0] > 0 and per_row["align"][1] == 0  # L_align: pseudo users only
    assert (per_row["diff"] > 0).all() and (per_row["guess"] > 0).all()
    model.cfg = dataclasses.replace(cfg, diffuse_overlap=False)
    _, per_row = model._path_forward("AB", b)
    assert per_row["diff"][0] > 0 and per_row["diff"][1] == 0


def test_mean_reduction_divides_the_squared_norms_by_d():
    b = _pseudo_and_overlap(8, 9)
    per = {}
    for reduce in ("sum", "mean"):
        torch.manual_seed(0)
        model = LGCD(LGCDConfig(**SMALL, sq_reduce=reduce), fake_encoders({"A": 30, "B": 30}, d=D))
        torch.manual_seed(1)
        _, per[reduce] = model._path_forward("AB", b)
    for term in ("diff", "guess", "align"):
        torch.testing.assert_close(per["mean"][term], per["sum"][term] / D)
    torch.testing.assert_close(per["mean"]["rec"], per["sum"]["rec"])


def test_rows_excluded_from_diffusion_do_not_train_the_denoiser():
    overlap = row_from_record(dict(user="o", items=[4, 9, 6], domains=["A", "B", "A"],
                                   source_domain="A", target_domain="B", target_item=7,
                                   kind="overlap", split="train"))
    batch = LGCDBatch({"AB": collate([overlap]).paths["AB"]})
    for diffuse_overlap, expect_grad in ((True, True), (False, False)):
        torch.manual_seed(0)
        cfg = LGCDConfig(**SMALL, diffuse_overlap=diffuse_overlap)
        model = LGCD(cfg, fake_encoders({"A": 30, "B": 30}, d=D))
        _, losses = model(batch)
        losses["total"].backward()
        grads = [p.grad for p in model.paths["AB"].diffusion.denoiser.parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads) == expect_grad
        assert model.paths["AB"].guesser.weight.grad.abs().sum() > 0  # L_guess still trains


def test_score_candidates_match_full_catalog(planted):
    train, evals, text, _ = planted
    torch.manual_seed(0)
    model = LGCD(LGCDConfig(**SMALL), pretrained_fake_encoders(text)).eval()
    b = collate(evals[:10]).paths["AB"]
    full = model.score("AB", b, generator=torch.Generator().manual_seed(1))
    cand = torch.stack([torch.randperm(48)[:7] for _ in range(len(b))])
    some = model.score("AB", b, cand, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(some, full.gather(1, cand))
    again = model.score("AB", b, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(full, again, rtol=0, atol=0)


def test_real_encoders_train_and_score():
    model = LGCD(LGCDConfig(**SMALL), real_encoders())
    _, losses = model(LGCDBatch({"AB": _pseudo_and_overlap(8, 9)}))
    losses["total"].backward()
    model.eval()
    assert model.score("AB", _pseudo_and_overlap(8, 9)).shape == (2, 30)


def test_rejects_mismatched_encoders():
    with pytest.raises(ValueError, match="cfg.d"):
        LGCD(LGCDConfig(d=32), fake_encoders({"A": 5, "B": 5}, d=D))
    with pytest.raises(ValueError, match="max_len"):
        LGCD(LGCDConfig(d=D, max_len=80), real_encoders())


def test_full_model_beats_without_diffusion_on_planted_problem(planted):
    """Users' target theme is a function of their source theme (a planted cross-domain map).

    With frozen, pre-trained-like encoders the full model learns the map from the pseudo
    and overlap users' target features (guesser + diffusion + MoE), while w/o Diffusion
    must learn it through the condition fusion and L_rec alone. Same seed, same 50 steps
    (an epoch is a pass over the 24 overlap users: 2 steps).
    """
    train, evals, text, n_items = planted
    results = {}
    for name in ("full", "wo_diffusion"):
        cfg = LGCDConfig.variant(name, **{**SMALL, "batch_size": 64, "overlap_batch_size": 16},
                                 epochs=25, patience=25)
        torch.manual_seed(0)
        model = LGCD(cfg, pretrained_fake_encoders(text))
        evaluate = CandidateEvaluator(evals, n_items, n_negatives=999, k=10, seed=0)
        results[name] = train_lgcd(model, TrainBatches(train, cfg), evaluate)
    full, ablated = results["full"], results["wo_diffusion"]
    assert full.steps == ablated.steps == 50
    best = {k: max(h["ndcg@10"] for h in r.history) for k, r in results.items()}
    assert best["full"] > best["wo_diffusion"] + 0.1, best
    assert max(h["hr@10"] for h in full.history) > 0.8


def _reached(model: LGCD, term: torch.Tensor) -> set[str]:
    """Parameter groups (path part, e.g. "AB.guesser") that ``term``'s gradient reaches."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(term, [p for _, p in named], retain_graph=True, allow_unused=True)
    return {".".join(n.split(".")[1:3]) for (n, _), g in zip(named, grads, strict=True)
            if g is not None and g.abs().sum() > 0}


@pytest.mark.parametrize("train_start", ["guesser", "x0_hat"])
def test_each_loss_term_reaches_its_own_parameters_only(train_start):
    """diff trains the denoiser (and the condition it reads), guess the guesser, align the
    reverse path, rec everything on the path; nothing reaches the other direction. With
    train_start="guesser" L_rec flows through g -> reverse -> fusion as at inference."""
    torch.manual_seed(0)
    model = LGCD(LGCDConfig(**SMALL, train_start=train_start, item_bias=True,
                            item_residual=True, source_adapter=True),
                 fake_encoders({"A": 30, "B": 30}, d=D))
    with torch.no_grad():  # a live fusion head, so a path through it would show
        for p in model.paths["AB"].parameters():
            p.add_(0.1 * torch.randn_like(p))
    _, losses = model(LGCDBatch({"AB": _pseudo_and_overlap(8, 9)}))
    cond = {"AB.cond_fusion", "AB.source_adapter", "AB.adapter_recency"}  # all of h_cond
    guess, denoise = "AB.guesser", "AB.diffusion"
    fusion, bias, residual = "AB.fusion", "AB.item_bias", "AB.item_residual"
    expected = {
        "diff": cond | {denoise},
        "guess": cond | {guess},
        "align": cond | {denoise} | ({guess} if train_start == "guesser" else set()),
        "rec": cond | {denoise, fusion, bias, residual}
        | ({guess} if train_start == "guesser" else set()),
    }
    for name, want in expected.items():
        assert _reached(model, losses[name]) == want, name


def _plain_and_option(**option):
    """(encoders, the default model, the same model with ``option``), from the same seed."""
    encoders = fake_encoders({"A": 30, "B": 30}, d=D)
    torch.manual_seed(0)
    plain = LGCD(LGCDConfig(**SMALL), encoders)
    torch.manual_seed(0)
    return encoders, plain, LGCD(LGCDConfig(**SMALL, **option), encoders)


def test_item_residual_starts_at_the_encoders_table_and_moves_only_the_target_scores():
    encoders, plain, model = _plain_and_option(item_residual=True)
    h = torch.randn(4, D)
    assert torch.equal(model.logits("AB", h), plain.logits("AB", h))
    with torch.no_grad():
        model.paths["AB"].item_residual[3] += 1.0
    moved = model.logits("AB", h) - plain.logits("AB", h)  # (4, 30)
    assert torch.allclose(moved[:, 3], h.sum(-1)) and not moved[:, [0, 1, 2, 4]].any()
    assert torch.equal(model.logits("BA", h), plain.logits("BA", h))
    food_only = LGCD(LGCDConfig(**SMALL, item_residual={"A": True, "B": False}), encoders)
    assert hasattr(food_only.paths["BA"], "item_residual")  # B -> A: Food is the target
    assert not hasattr(food_only.paths["AB"], "item_residual")


def test_source_adapter_starts_at_the_encoders_condition_and_weighs_recent_items():
    """Zero-initialised, the adapter leaves h_cond as the frozen encoder gives it; an item's
    adapter row moves only the rows that hold that item, by its recency weight; the other
    direction keeps its own adapter."""
    _, plain, model = _plain_and_option(source_adapter=True)
    b = _pseudo_and_overlap(4, 4)
    assert torch.equal(model.condition("AB", b)[1], plain.condition("AB", b)[1])
    path = model.paths["AB"]
    assert b.src_items[0, b.src_mask[0]].tolist() == [1, 2, 3]  # row 1 holds 4, 6
    with torch.no_grad():
        path.source_adapter.weight[3] += 1.0  # row 0's most recent source item
        path.adapter_recency[0] = 5.0  # the most recent item dominates the pool
    moved = model.condition("AB", b)[1] - plain.condition("AB", b)[1]  # (B, d) of h_ID
    share = torch.softmax(torch.tensor([5.0, 0.0, 0.0]), 0)[0]  # distances 0, 1, 2
    torch.testing.assert_close(moved[0], share * torch.ones(D))
    assert not moved[1].any()
    assert model.paths["BA"].source_adapter.weight.abs().sum() == 0


def test_finetune_condition_trains_a_copy_of_the_source_encoder_per_path():
    """The path's copy starts equal to the shared encoder and takes the gradient; the shared
    encoders, which give h_tgt and the target tables, stay frozen and untouched."""
    _, plain, model = _plain_and_option(finetune_condition=True)
    b = _pseudo_and_overlap(4, 4)
    for got, want in zip(model.condition("AB", b), plain.condition("AB", b), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    copy_a = model.paths["AB"].cond_encoder
    assert copy_a is not model.encoders["A"]
    _, losses = model(LGCDBatch({"AB": b}))
    losses["rec"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in copy_a.parameters())
    assert all(not p.requires_grad for p in model.encoders.parameters())
    assert all(p.grad is None for p in model.paths["BA"].cond_encoder.parameters())


def test_a_zero_weight_on_every_active_loss_is_a_config_error():
    with pytest.raises(ValueError, match="w_diff, w_guess, w_align, w_rec"):
        LGCDConfig(w_diff=0, w_guess=0, w_align=0, w_rec=0)
    with pytest.raises(ValueError, match="w_rec"):  # w/o Diffusion computes L_rec only
        LGCDConfig.variant("wo_diffusion", w_rec=0)
    LGCDConfig(w_diff=0, w_guess=0, w_align=0)  # L_rec alone still trains


def _inference_rec(model: LGCD, rows) -> float:
    """Mean L_rec of ``rows`` as a test user is scored: guesser -> reverse -> fusion."""
    model.eval()
    gen, losses = torch.Generator().manual_seed(0), []
    with torch.no_grad():
        for direction, b in collate(rows).paths.items():
            logits = model.logits(direction, model.user_representation(direction, b, gen))
            losses.append(torch.nn.functional.cross_entropy(logits, b.target, reduction="sum"))
    return float(sum(losses)) / len(rows)


def test_rec_loss_falls_through_the_inference_path(planted):
    train, evals, text, n_items = planted
    cfg = LGCDConfig(**{**SMALL, "batch_size": 64, "overlap_batch_size": 16}, epochs=10,
                     patience=10)
    torch.manual_seed(0)
    model = LGCD(cfg, pretrained_fake_encoders(text))
    overlap = [r for r in train if r.kind == "overlap"]
    before = {"train": _inference_rec(model, overlap), "eval": _inference_rec(model, evals)}
    train_lgcd(model, TrainBatches(train, cfg),
               CandidateEvaluator(evals, n_items, n_negatives=999, k=10, seed=0))
    after = {"train": _inference_rec(model, overlap), "eval": _inference_rec(model, evals)}
    assert after["train"] < 0.8 * before["train"], (before, after)
    assert after["eval"] < 0.8 * before["eval"], (before, after)


def test_frozen_item_tables_are_cached_until_an_encoder_tensor_changes():
    """E_fusion is computed once while the encoders are frozen; loading other encoder
    weights recomputes it, and fine-tuned encoders are never cached."""
    encoders = real_encoders()
    model = LGCD(LGCDConfig(**SMALL), encoders).eval()
    first = model.item_table("B")
    assert model.item_table("B") is first
    torch.testing.assert_close(first, encoders["B"].item_table(), rtol=0, atol=0)
    other = real_encoders(seed=1)["B"].state_dict()
    encoders["B"].load_state_dict(other)
    fresh = model.item_table("B")
    assert not torch.allclose(fresh, first)
    torch.testing.assert_close(fresh, encoders["B"].item_table(), rtol=0, atol=0)
    tuned = LGCD(LGCDConfig(**SMALL, finetune_encoders=True), real_encoders())
    assert tuned.item_table("A").requires_grad
    assert tuned.item_table("A") is not tuned.item_table("A")
