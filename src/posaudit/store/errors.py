"""The store's errors: each message is one line meant for the user."""

from __future__ import annotations


class StoreError(Exception):
    """A store that cannot be used as asked. The message is one line meant for the user."""


class StoreLockedError(StoreError):
    """The store is being written by another process (exit code 3 on the command line)."""
