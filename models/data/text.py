"""Sanitizing untrusted product text before it is stored, embedded or put into an LLM prompt.

Amazon metadata carries HTML fragments, entities, stray JavaScript, control and
bidirectional characters and titles of several kilobytes. Everything that later
reaches a prompt passes through :func:`sanitize_expr` here, so the rules live in
one place: unescape entities, drop tags, drop control/format characters,
collapse whitespace, cap the length. Vectorized with polars because a catalog
has millions of rows.
"""

import html

import polars as pl

TITLE_CAP = 300
CATEGORY_CAP = 100
BRAND_CAP = 100
DESCRIPTION_CAP = 1000
TEXT_CAP = 500

_TAG = r"</?[A-Za-z!][^<>]{0,2000}>"  # a tag starts with a letter, "/" or "!"; bounded
_SCRIPT = r"(?is)<(script|style)\b[^>]{0,2000}>.*?</(script|style)\s*>"
_CONTROL = r"[\p{Cc}\p{Cf}\p{Co}\x{FFFD}]"  # controls, bidi/zero-width, private use, U+FFFD


def unescape_html(series: pl.Series) -> pl.Series:
    """``html.unescape`` on the rows that contain an entity (few), leaving the rest alone."""
    mask = series.str.contains("&", literal=True).fill_null(False)
    if not mask.any():
        return series
    fixed = pl.Series([html.unescape(v) for v in series.filter(mask)], dtype=pl.String)
    return series.scatter(mask.arg_true(), fixed)


def sanitize_expr(expr: pl.Expr, cap: int) -> pl.Expr:
    """Plain single-line text of at most ``cap`` characters; null becomes ""."""
    return (
        expr.map_batches(unescape_html, return_dtype=pl.String)
        .str.replace_all(_SCRIPT, " ")
        .str.replace_all(_TAG, " ")
        .str.replace_all(_CONTROL, " ")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
        .str.slice(0, cap)
        .str.strip_chars()
        .fill_null("")
    )


def sanitize(values: list[str | None], cap: int = TEXT_CAP) -> list[str]:
    """Scalar convenience over :func:`sanitize_expr` (tests, small lists)."""
    frame = pl.DataFrame({"v": values}, schema={"v": pl.String})
    return frame.select(sanitize_expr(pl.col("v"), cap))["v"].to_list()


def join_text(*parts: pl.Expr, cap: int = TEXT_CAP) -> pl.Expr:
    """``"title | category | brand"`` from already sanitized parts, skipping empty ones."""
    return (
        pl.concat_list(parts)
        .list.eval(pl.element().filter(pl.element() != ""))
        .list.join(" | ")
        .str.slice(0, cap)
    )
