"""Keyed SHA-256 digests in bulk, computed by DuckDB in a private in-memory database.

The store is the one package that imports duckdb, so the PIN digests (:mod:`posaudit.pins`)
borrow DuckDB's ``sha256`` from here: one query digests a whole series off the interpreter's
lock, where a loop over :mod:`hmac` would hold it. The database is in memory and private to
the call: it opens no store and no file, so neither the key blocks it is given nor a value it
digests is ever written anywhere.
"""

from __future__ import annotations

from typing import Final

import duckdb
import polars as pl

DIGEST_QUERY: Final = (
    "SELECT sha256($outer || unhex(sha256($inner || encode(value)))) AS digest FROM frame"
)


def hmac_sha256_digests(values: pl.Series, *, inner_block: bytes, outer_block: bytes) -> pl.Series:
    """The hex HMAC-SHA256 of each value's UTF-8 bytes, in order, as a series named ``digest``.

    ``inner_block`` and ``outer_block`` are the key padded to SHA-256's block and XORed with
    RFC 2104's ipad and opad; the digest is ``H(outer_block || H(inner_block || value))``.
    The caller pads the key: this module sees only the padded blocks, as query parameters.
    """
    frame = pl.DataFrame({"value": values.cast(pl.String)})  # noqa: F841 - DuckDB reads it by name
    with duckdb.connect() as connection:
        digests = connection.sql(
            DIGEST_QUERY, params={"outer": outer_block, "inner": inner_block}
        ).pl()
    return digests.get_column("digest")
