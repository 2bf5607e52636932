"""Turn user mistakes into a Dagster ``Failure`` whose description says what to fix.

Errors raised for bad input (missing files, bad configs, unusable data) carry
a message that names the file or cause; this wrapper surfaces that message as
the step's failure description instead of a bare traceback.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from models.data.errors import UnusableDataError
from models.data.sources import SourceError
from pipeline.config import ConfigError
from pipeline.storage import StorageError

USER_ERRORS: tuple[type[BaseException], ...] = (SourceError, ConfigError, StorageError,
                                                UnusableDataError)


class DataError(ValueError):
    """Input data that cannot produce a valid output (e.g. no overlapping users left)."""


@contextmanager
def user_errors(*extra: type[BaseException]) -> Iterator[None]:
    """Re-raise known input errors as ``dg.Failure`` with the original message."""
    try:
        yield
    except (*USER_ERRORS, DataError, *extra) as exc:
        raise dg.Failure(description=str(exc), metadata={"error": type(exc).__name__}) from exc
