"""Layered TOML settings: a built-in default overridden by a user's file, checked key by key."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any


class ConfigError(ValueError):
    """A settings file or value that cannot be used; the message is one line for the user."""


def merge_settings(
    base: dict[str, Any],
    override: dict[str, Any],
    *,
    source: str,
    share_keys: Collection[str] = (),
    where: str = "",
) -> None:
    """Write ``override`` into ``base`` in place, refusing what the default does not know.

    Every key must exist in ``base``; values keep the default's type (an int is accepted
    where a float is expected); numbers may not be negative, and keys in ``share_keys`` lie
    in 0..1. Raises :class:`ConfigError` naming the file, the key and the value.
    """
    for key, value in override.items():
        path = f"{where}.{key}" if where else key
        if key not in base:
            msg = f"{source}: unknown key '{path}'"
            raise ConfigError(msg)
        current = base[key]
        if isinstance(current, dict):
            if not isinstance(value, dict):
                msg = f"{source}: '{path}' must be a table, not {type(value).__name__}"
                raise ConfigError(msg)
            merge_settings(current, value, source=source, share_keys=share_keys, where=path)
            continue
        if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        same_type = isinstance(value, type(current)) and isinstance(value, bool) == isinstance(current, bool)
        if not same_type:
            msg = f"{source}: '{path}' must be {type(current).__name__}, not {type(value).__name__} ({value!r})"
            raise ConfigError(msg)
        if isinstance(value, list) and current and any(not isinstance(v, type(current[0])) for v in value):
            msg = f"{source}: '{path}' must be a list of {type(current[0]).__name__}"
            raise ConfigError(msg)
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            msg = f"{source}: '{path}' must not be negative (got {value})"
            raise ConfigError(msg)
        if key in share_keys and value > 1:
            msg = f"{source}: '{path}' is a share between 0 and 1 (got {value})"
            raise ConfigError(msg)
        base[key] = value
