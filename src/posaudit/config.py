"""Layered TOML settings: a built-in default overridden by a user's file, checked key by key."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Collection
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A settings file or value that cannot be used; the message is one line for the user."""


def read_text_file(path: Path, *, what: str, error: type[ConfigError] = ConfigError) -> str:
    """A settings file's text; ``error`` with one line when it is missing or unreadable."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        msg = f"{what} file {path} does not exist"
        raise error(msg) from None
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"cannot read {what} file {path}: {exc}"
        raise error(msg) from None


def parse_toml(text: str, *, source: str, error: type[ConfigError] = ConfigError) -> dict[str, Any]:
    """TOML text as a dict; ``error`` naming ``source`` when it is not valid TOML."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = f"{source} is not valid TOML: {exc}"
        raise error(msg) from None


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
    where a float is expected); numbers must be finite (TOML allows ``nan`` and ``inf``,
    which pass every range check) and not negative, and keys in ``share_keys`` lie in 0..1.
    Raises :class:`ConfigError` naming the file, the key and the value.
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
        # True is an int to isinstance: a switch takes no number, a number no switch
        bool_matches = isinstance(value, bool) == isinstance(current, bool)
        same_type = isinstance(value, type(current)) and bool_matches
        if not same_type:
            msg = (
                f"{source}: '{path}' must be {type(current).__name__}, "
                f"not {type(value).__name__} ({value!r})"
            )
            raise ConfigError(msg)
        if (
            isinstance(value, list)
            and current
            and any(not isinstance(v, type(current[0])) for v in value)
        ):
            msg = f"{source}: '{path}' must be a list of {type(current[0]).__name__}"
            raise ConfigError(msg)
        if isinstance(value, float) and not math.isfinite(value):
            msg = f"{source}: '{path}' must be a finite number (got {value})"
            raise ConfigError(msg)
        if isinstance(value, list) and any(
            isinstance(v, float) and not math.isfinite(v) for v in value
        ):
            msg = f"{source}: '{path}' must hold finite numbers (got {value})"
            raise ConfigError(msg)
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            msg = f"{source}: '{path}' must not be negative (got {value})"
            raise ConfigError(msg)
        if key in share_keys and value > 1:
            msg = f"{source}: '{path}' is a share between 0 and 1 (got {value})"
            raise ConfigError(msg)
        base[key] = value
