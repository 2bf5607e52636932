"""Errors for input data that parses but cannot make a usable dataset.

Kept free of Dagster so that ``models/`` stays plain; ``pipeline.errors`` lists
it among the user errors that become a step failure with this message.
"""


class UnusableDataError(ValueError):
    """The data cannot produce the requested tables (e.g. no overlapping users); names the cause."""
