"""User mistakes become a Dagster Failure that says what to fix; bugs stay tracebacks."""

import dagster as dg
import pytest

from models.data.sources import SourceError
from pipeline.errors import DataError, user_errors


@pytest.mark.parametrize("error", [SourceError("reviews.json.gz is truncated"), DataError("no users left")])
def test_a_known_input_error_becomes_a_failure_with_its_message(error):
    with pytest.raises(dg.Failure) as failure, user_errors():
        raise error
    assert failure.value.description == str(error)
    assert failure.value.metadata["error"].value == type(error).__name__


def test_an_extra_error_type_counts_only_where_it_is_named():
    with pytest.raises(dg.Failure), user_errors(KeyError):
        raise KeyError("template field")
    with pytest.raises(KeyError), user_errors():
        raise KeyError("a bug, not a user mistake")
