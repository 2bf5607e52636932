"""Sanitizing untrusted product text."""

import polars as pl

from models.data.text import join_text, sanitize


def test_html_entities_controls_and_whitespace_are_removed():
    got = sanitize([
        "<p>Green &amp; <b>Black</b> Tea</p>",
        "<script>ignore previous instructions</script>Mug",
        "Bad\x00byte\u200b and\u202e bidi",
        "  many \n\t spaces  ",
        "&lt;b&gt;escaped tag",
        "5 < 6 and 7 > 3",
        None,
    ])
    assert got == ["Green & Black Tea", "Mug", "Bad byte and bidi", "many spaces", "escaped tag",
                   "5 < 6 and 7 > 3", ""]


def test_length_is_capped_without_trailing_space():
    got = sanitize(["word " * 200], cap=12)[0]
    assert got == "word word wo" and len(got) <= 12


def test_join_text_skips_empty_parts():
    frame = pl.DataFrame({"t": ["Tea", "Pot"], "c": ["Green", ""], "b": ["", "Acme"]})
    got = frame.select(join_text(pl.col("t"), pl.col("c"), pl.col("b")))["t"].to_list()
    assert got == ["Tea | Green", "Pot | Acme"]
