"""The errors a user's input causes. Every command reports them as one line naming the file or key and what was
expected, with exit status 2 (``ecgjepa.cli``)."""

from __future__ import annotations


class UserError(Exception):
    """Input the user can fix: a file, a column, a value or a key that is not what was expected."""


class DataPrepError(UserError):
    """A problem with a whole source (missing raw folder or CSV, unwritable output, no usable record), not one
    record."""


class DumpError(UserError, ValueError):
    """A dump on disk does not match what the project expects."""
