"""Run by tests/pipeline/test_signals.py in a child pytest started with SIGINT ignored."""

import signal

import dagster as dg


def test_sigterm_is_not_ignored_after_an_in_process_run():
    @dg.asset
    def one() -> int:
        return 1

    with dg.DagsterInstance.ephemeral() as instance:
        assert dg.materialize([one], instance=instance).success
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN
