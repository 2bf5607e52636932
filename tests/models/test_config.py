"""Reading a config section from YAML: unknown keys, lists, nested sections, inherited and owned settings."""

from dataclasses import dataclass, field

import pytest

from models.config import NestedFieldError, from_mapping


@dataclass(frozen=True)
class Inner:
    kind: str = "flat"

    def __post_init__(self) -> None:
        if self.kind not in ("flat", "ivf"):
            raise ValueError(f"kind={self.kind!r}")


@dataclass(frozen=True)
class Section:
    size: int = 4
    values: tuple[int, ...] = (1, 2)
    seed: int = 0
    d: int = 64
    inner: Inner = field(default_factory=Inner)


def test_absent_section_takes_the_defaults_and_inherited_values():
    assert from_mapping(Section, None, inherited={"seed": 7}) == Section(seed=7)


def test_the_sections_own_value_wins_over_the_inherited_one_and_lists_become_tuples():
    got = from_mapping(Section, {"seed": 3, "values": [5, 6], "inner": {"kind": "ivf"}},
                       nested={"inner": Inner}, inherited={"seed": 7})
    assert got == Section(seed=3, values=(5, 6), inner=Inner("ivf"))


def test_unknown_keys_are_named_with_the_allowed_ones():
    with pytest.raises(ValueError, match=r"unknown fields \['colour'\]; allowed \['d', 'inner', 'seed'"):
        from_mapping(Section, {"colour": 1})


def test_a_setting_owned_by_another_section_is_refused_with_its_owner():
    with pytest.raises(ValueError, match="d is set by encoder.d"):
        from_mapping(Section, {"d": 32}, owned_elsewhere={"d": "encoder.d"})
    assert from_mapping(Section, {}, inherited={"d": 32}, owned_elsewhere={"d": "encoder.d"}).d == 32


def test_a_nested_error_names_the_sub_section():
    with pytest.raises(NestedFieldError, match="inner: kind='hnsw'"):
        from_mapping(Section, {"inner": {"kind": "hnsw"}}, nested={"inner": Inner})


def test_a_section_that_is_not_a_mapping_is_refused():
    with pytest.raises(ValueError, match="must be a mapping, got 'fast'"):
        from_mapping(Section, "fast")
