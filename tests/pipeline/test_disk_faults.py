"""A publish that fails part-way leaves the previous version loadable and says why.

The fault is real, not a mock: a child process runs under a file-size limit
(``RLIMIT_FSIZE``, with ``SIGXFSZ`` ignored so that a write past it fails with EFBIG the
way a full disk fails with ENOSPC), then tries to publish over a version the parent wrote.
polars and torch report it in their own words; storage must turn it into one error that
names the storage root and the cause, remove its staging folder, and leave the previous
version and the ``LATEST`` pointer as they were.
"""

import subprocess
import sys
import textwrap

import polars as pl
import torch

from pipeline import storage
from pipeline.settings import PROJECT_ROOT

LIMIT = 200_000  # bytes: the small versions below fit, the big ones do not

CHILD = textwrap.dedent("""
    import resource, signal, sys
    import dagster as dg
    import numpy as np
    import polars as pl
    import torch
    from pipeline import storage
    from pipeline.io_managers import VersionedIOManager, VersionStore

    root, limit = sys.argv[1], int(sys.argv[2])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    big = pl.DataFrame({"x": np.random.default_rng(0).random(limit)})
    for key, value in (("interactions", big),
                       ("sequence_encoder_a", storage.Checkpoint({"w": torch.randn(limit)}, {}))):
        try:
            storage.write(storage.ensure_root(root), [key], value)
        except storage.StorageError as exc:
            print(f"{key}: {exc}")

    @dg.asset(name="interactions")
    def interactions(store: VersionStore) -> dg.MaterializeResult:
        return store.publish(big)

    store = VersionStore(root=root)
    result = dg.materialize([interactions], instance=dg.DagsterInstance.ephemeral(),
                            resources={"store": store, "io_manager": VersionedIOManager(store=store)},
                            raise_on_error=False)
    failure = next(e for e in result.all_events if e.is_step_failure)
    print("dagster:", failure.step_failure_data.error.message.strip().replace("\\n", " "))
""")


def test_a_write_past_the_limit_keeps_the_previous_version_and_names_root_and_cause(tmp_path):
    root = storage.ensure_root(tmp_path / "storage")
    table = pl.DataFrame({"user": ["a", "b"], "item": [1, 2]})
    ckpt = storage.Checkpoint({"w": torch.ones(8)}, {"d": 8})
    previous = {"interactions": storage.write(root, ["interactions"], table),
                "sequence_encoder_a": storage.write(root, ["sequence_encoder_a"], ckpt)}

    out = subprocess.run([sys.executable, "-c", CHILD, str(root), str(LIMIT)], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.split(": ", 1) for line in out.stdout.splitlines())
    assert set(lines) == {"interactions", "sequence_encoder_a", "dagster"}, out.stdout
    for message in lines.values():
        assert f"storage root {root}" in message
        assert "Nothing was published and the previous version is unchanged" in message
        assert f"at most {LIMIT} bytes (RLIMIT_FSIZE)" in message
    assert "File too large" in lines["interactions"]  # polars' own words for EFBIG

    for key, folder in previous.items():
        assert storage.latest_version(root, [key]) == folder.name
        assert {p.name for p in folder.parent.iterdir()} == {folder.name, storage.LATEST}
    assert storage.read(previous["interactions"]).equals(table)
    assert torch.equal(storage.read(previous["sequence_encoder_a"]).state_dict["w"], torch.ones(8))
    assert not any((root / storage.STAGING).iterdir())  # no partial folder left anywhere
