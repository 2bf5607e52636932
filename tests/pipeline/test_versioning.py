"""Code versions change exactly when the logic revision or a configuration part changes."""

from dataclasses import dataclass
from pathlib import Path

from pipeline.versioning import code_version, fingerprint


@dataclass(frozen=True)
class Part:
    a: int = 1
    b: tuple[int, ...] = (1, 2)


def test_equal_configs_give_equal_versions_whatever_the_container_or_key_order():
    assert fingerprint(Part(), {"x": 1, "y": Path("/p")}) == fingerprint(Part(b=[1, 2]), {"y": "/p", "x": 1})
    assert code_version("emb1", Part()) == f"emb1-{fingerprint(Part())}"


def test_a_changed_setting_or_revision_changes_the_version():
    base = code_version("emb1", Part())
    assert code_version("emb1", Part(a=2)) != base
    assert code_version("emb2", Part()) != base
    assert len(fingerprint(Part())) == 12
