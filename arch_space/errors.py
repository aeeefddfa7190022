"""The error of the architecture layer, shared by specs, the kinds table and search spaces."""

from __future__ import annotations


class SpecError(ValueError):
    """A spec (or a search-space point) is invalid; the message starts with the offending path."""
