"""The application layer above assets/: the one Definitions, jobs, schedules, sensors and the CLI.

Nothing in pipeline/, assets/ or models/ imports from here, so the layers only point down.
"""
