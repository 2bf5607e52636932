"""A suite started as a background job (SIGINT ignored) keeps SIGTERM working.

tests/conftest.py ``pytest_configure`` restores the default handlers; without it Dagster's
in-process execution leaves SIGTERM ignored for the rest of the session.
"""

import signal
import subprocess
import sys

from pipeline.settings import PROJECT_ROOT


def test_sigterm_still_works_after_dagster_runs_when_started_with_sigint_ignored():
    probe = PROJECT_ROOT / "tests" / "pipeline" / "sigterm_probe.py"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(probe)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert out.returncode == 0, out.stdout[-3000:]
    assert "1 passed" in out.stdout
