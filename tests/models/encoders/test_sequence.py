import pytest
import torch

from models.encoders.sequence import (
    ARCH,
    DomainEncoder,
    EncoderConfig,
    attention_mask,
    encoders_from_checkpoints,
    last_real,
    pad_sequences,
)
from pipeline import storage

N, E, D, MAX_LEN = 23, 12, 16, 8


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_encoder(seed: int = 0, **over) -> DomainEncoder:
    torch.manual_seed(seed)
    cfg = EncoderConfig(**{"n_items": N, "text_dim": E, "d": D, "n_heads": 2, "n_layers": 2,
                           "max_len": MAX_LEN, "dropout": 0.1, **over})
    return DomainEncoder(cfg, torch.randn(N, E)).eval()


@pytest.fixture
def enc() -> DomainEncoder:
    return make_encoder()


HISTORIES = [[1, 2, 3, 4, 5], [7], [0, 22, 9], [3, 3, 3, 3, 3, 3, 3, 3]]


def test_output_shapes(enc):
    items, mask = pad_sequences(HISTORIES, MAX_LEN)
    B, L = items.shape
    text = torch.randn(B, L, E)
    assert enc.id_states(items, mask).shape == (B, L, D)
    assert enc.text_states(text, mask).shape == (B, L, D)
    assert enc(items, mask).shape == (B, L, D)
    h_id, h_text = enc.encode_ids(items, mask), enc.encode_text(text, mask)
    assert h_id.shape == h_text.shape == (B, D)
    assert enc.fuse(h_id, h_text).shape == (B, D)
    assert enc.encode(items, mask).shape == (B, D)
    assert enc.encode_item_text(items, mask).shape == (B, D)
    assert enc.item_table().shape == (N, D)


def test_item_table_is_eq3_fusion_of_id_and_projected_text(enc):
    expected = enc.fusion(torch.cat([enc.item_emb.weight, enc.text_proj(enc.item_text)], dim=1))
    torch.testing.assert_close(enc.item_table(), expected, rtol=0, atol=0)
    before = enc.item_table().detach().clone()
    enc.item_text[5] += 1.0  # the text buffer feeds E_text
    after = enc.item_table().detach()
    assert not torch.equal(before[5], after[5])
    torch.testing.assert_close(before[:5], after[:5], rtol=0, atol=0)


def test_encode_uses_buffered_item_text_and_fuses(enc):
    items, mask = pad_sequences(HISTORIES, MAX_LEN)
    h = enc.encode(items, mask)
    manual = enc.fuse(enc.encode_ids(items, mask), enc.encode_text(enc.item_text[items], mask))
    torch.testing.assert_close(h, manual, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(enc.encode_item_text(items, mask),
                               enc.encode_text(enc.item_text[items], mask), rtol=0, atol=0)


def test_causal_masking_later_items_do_not_change_earlier_positions(enc):
    items, mask = pad_sequences([[1, 2, 3, 4, 5, 6]], MAX_LEN, side="right")
    changed = items.clone()
    changed[0, 4] = 17  # change position 4 only
    text = enc.item_text[items]
    text_changed = text.clone()
    text_changed[0, 4] = torch.randn(E)
    for fn, a, b in [(enc.id_states, items, changed), (enc.text_states, text, text_changed),
                     (enc.forward, items, changed)]:
        out_a, out_b = fn(a, mask), fn(b, mask)
        torch.testing.assert_close(out_a[0, :4], out_b[0, :4], rtol=0, atol=1e-6)
        assert not torch.allclose(out_a[0, 4:6], out_b[0, 4:6])


def test_padding_side_and_amount_do_not_change_results(enc):
    ref = torch.cat([enc.encode(*pad_sequences([h], MAX_LEN)) for h in HISTORIES])
    left = enc.encode(*pad_sequences(HISTORIES, MAX_LEN, side="left"))
    right = enc.encode(*pad_sequences(HISTORIES, MAX_LEN, side="right"))
    torch.testing.assert_close(left, ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(right, ref, rtol=0, atol=1e-5)
    # per-position outputs of real items match too, and padding content is ignored
    items, mask = pad_sequences(HISTORIES, MAX_LEN, side="left")
    garbage = items.masked_fill(~mask, 21)
    torch.testing.assert_close(enc(items, mask)[mask], enc(garbage, mask)[mask], rtol=0, atol=0)
    text = enc.item_text[items].masked_fill(~mask[..., None], 1e3)
    torch.testing.assert_close(enc.encode_text(text, mask),
                               enc.encode_text(enc.item_text[items], mask), rtol=0, atol=1e-5)


def test_attention_mask_never_reads_padding_and_keeps_rows_finite():
    mask = torch.tensor([[False, False, True, True]])
    allowed = attention_mask(mask)[0, 0]
    assert allowed[3].tolist() == [False, False, True, True]
    assert allowed[2].tolist() == [False, False, True, False]
    assert allowed[0].tolist() == [True, False, False, False]  # padding sees only itself


def test_last_real_handles_both_paddings():
    states = torch.arange(8.0).view(2, 4, 1)
    mask = torch.tensor([[True, True, False, False], [False, True, True, True]])
    assert last_real(states, mask).flatten().tolist() == [1.0, 7.0]


def test_pad_sequences_keeps_most_recent_items():
    items, mask = pad_sequences([list(range(12)), [5]], 4, side="left")
    assert items.tolist() == [[8, 9, 10, 11], [0, 0, 0, 5]]
    assert mask.tolist() == [[True] * 4, [False, False, False, True]]


def test_checkpoint_round_trip_through_storage_is_exact(enc, tmp_path):
    state, config = enc.to_checkpoint()
    assert config["arch"] == ARCH and "item_text" in state  # the checkpoint is self-contained
    folder = storage.write(tmp_path, ["sequence_encoder_a"], storage.Checkpoint(state, config))
    loaded = storage.read(folder)
    again = DomainEncoder.from_checkpoint(loaded.state_dict, loaded.config).eval()
    for name, tensor in enc.state_dict().items():
        torch.testing.assert_close(again.state_dict()[name], tensor, rtol=0, atol=0)
    items, mask = pad_sequences(HISTORIES, MAX_LEN)
    torch.testing.assert_close(again.encode(items, mask), enc.encode(items, mask), rtol=0, atol=0)
    torch.testing.assert_close(again.item_table(), enc.item_table(), rtol=0, atol=0)


def test_checkpoint_of_another_arch_is_refused(enc):
    state, config = enc.to_checkpoint()
    with pytest.raises(ValueError, match="arch"):
        DomainEncoder.from_checkpoint(state, {**config, "arch": "SASRec"})


@pytest.mark.parametrize(("call", "message"), [
    (lambda e: e.encode_ids(torch.zeros(2, 3, dtype=torch.int32),
                            torch.ones(2, 3, dtype=torch.bool)), "int64"),
    (lambda e: e.encode_ids(torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3)), "bool"),
    (lambda e: e.encode_ids(torch.zeros(1, MAX_LEN + 1, dtype=torch.long),
                            torch.ones(1, MAX_LEN + 1, dtype=torch.bool)), "exceeds max_len"),
    (lambda e: e.encode_ids(torch.tensor([[0, N]]), torch.ones(1, 2, dtype=torch.bool)),
     "out of range"),
    (lambda e: e.encode_ids(torch.tensor([[0, 1]]), torch.zeros(1, 2, dtype=torch.bool)),
     "at least one real item"),
    (lambda e: e.encode_text(torch.zeros(1, 2, E + 1), torch.ones(1, 2, dtype=torch.bool)),
     "text_emb must be"),
])
def test_bad_inputs_raise_clear_errors(enc, call, message):
    with pytest.raises(ValueError, match=message):
        call(enc)


@pytest.mark.parametrize(("over", "message"), [
    ({"d": 15}, "not divisible"), ({"n_items": 0}, "n_items=0"), ({"dropout": 1.0}, "dropout"),
])
def test_bad_config_is_rejected(over, message):
    with pytest.raises(ValueError, match=message):
        make_encoder(**over)


def test_item_text_of_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match="item_text has shape"):
        DomainEncoder(EncoderConfig(n_items=N, text_dim=E), torch.zeros(N + 1, E))


def test_encoders_from_checkpoints_rebuild_each_domain_in_eval_mode_fresh_each_call():
    parts = {d: storage.Checkpoint(*make_encoder(seed).to_checkpoint())
             for seed, d in enumerate("AB")}
    first, second = encoders_from_checkpoints(parts), encoders_from_checkpoints(parts)
    assert set(first) == {"A", "B"} and not first["A"].training and not first["B"].training
    assert first["A"] is not second["A"]  # a model that fine-tunes them cannot leak its weights
    for d, p in parts.items():
        for k, v in first[d].state_dict().items():
            torch.testing.assert_close(v, p.state_dict[k], rtol=0, atol=0)
