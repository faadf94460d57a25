"""Source files: SOURCE arguments expanded to files, each read as a frame of strings.

Every format arrives the same way: one String column per source column, as the file spells
it, and ``source_line``, where an analyst finds the row (CSV: the physical line, the header
being line 1; Excel: the sheet row; Parquet and JSON lines: the row number from 1). A row that
does not split into the header's fields (a truncated last line, a stray quote) is kept with
``bad_row`` set, so that it is counted and quarantined rather than lost.
"""

from __future__ import annotations

import codecs
import csv
import glob
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import polars as pl

from posaudit.ingest.mapping import IngestError

SourceFormat = Literal["csv", "xlsx", "parquet", "jsonl"]

FORMATS: Final = {
    ".csv": "csv",
    ".txt": "csv",
    ".xlsx": "xlsx",
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
LINE: Final = "source_line"
BAD_ROW: Final = "bad_row"
# Delimiters a CSV export uses, tried in this order when the mapping gives none.
DELIMITERS: Final = ",;\t|"
_SNIFF_BYTES: Final = 64 * 1024
_CHUNK_BYTES: Final = 1 << 20


@dataclass(frozen=True)
class SourceFile:
    """One file to ingest: its path as given, its format and its fingerprint."""

    path: Path
    format: SourceFormat
    fingerprint: str
    bytes: int


def source_files(sources: Sequence[str | Path]) -> list[Path]:
    """The files SOURCE arguments name: a file, a folder (its files, recursively, those of a
    known format) or a glob; each once, in the order given (a folder's and a glob's sorted).

    A name that matches nothing is :class:`IngestError`.
    """
    found: dict[Path, None] = {}
    for source in sources:
        text = str(source)
        path = Path(text)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and _known(p))
            if not inside:
                msg = f"folder {path} holds no file ingest reads ({', '.join(FORMATS)})"
                raise IngestError(msg)
            found.update(dict.fromkeys(inside))
        elif path.exists():
            found[path] = None
        elif glob.has_magic(text):
            matched = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not matched:
                msg = f"{text} matches no file"
                raise IngestError(msg)
            found.update(dict.fromkeys(matched))
        else:
            msg = f"{path} does not exist"
            raise IngestError(msg)
    return list(found)


def _known(path: Path) -> bool:
    return path.suffix.lower() in FORMATS


def describe(path: Path) -> SourceFile:
    """A file's format (by extension) and fingerprint (sha256 of its bytes)."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        msg = (
            f"{path}: ingest reads {', '.join(FORMATS)} files, not {path.suffix or 'no extension'}"
        )
        raise IngestError(msg)
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
    except IsADirectoryError:
        msg = f"{path} is a folder"
        raise IngestError(msg) from None
    if size == 0:
        msg = f"{path} is empty"
        raise IngestError(msg)
    return SourceFile(path, kind, digest.hexdigest(), size)  # type: ignore[arg-type]


def read_source(
    source: SourceFile, *, encoding: str = "utf-8", delimiter: str | None = None
) -> pl.DataFrame:
    """The rows of a source file as strings, with ``source_line`` and ``bad_row``.

    ``bad_row`` is null for a row that splits into the header's fields, else the problem in
    words. A header and no row is a table with nothing in it (no lockouts that month); a file
    with no header at all is :class:`IngestError`.
    """
    path = source.path
    if source.format == "csv":
        frame = _read_csv(path, encoding=encoding, delimiter=delimiter)
    elif source.format == "xlsx":
        frame = _read_excel(path)
    elif source.format == "parquet":
        frame = _strings(_read_other(path, pl.read_parquet, what="a Parquet file"))
    else:
        frame = _strings(_read_other(path, _read_ndjson, what="a JSON lines file"))
    return frame


def _read_ndjson(path: Path) -> pl.DataFrame:
    return pl.read_ndjson(path, infer_schema_length=None)


def _read_other(path: Path, reader: object, *, what: str) -> pl.DataFrame:
    try:
        frame: pl.DataFrame = reader(path)  # type: ignore[operator]
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = f"{path} is not {what}: {first}"
        raise IngestError(msg) from None
    return frame.with_row_index(LINE, offset=1).with_columns(
        pl.col(LINE).cast(pl.Int64), pl.lit(None, pl.String).alias(BAD_ROW)
    )


def _strings(frame: pl.DataFrame) -> pl.DataFrame:
    """Every source column as the string a CSV export would hold."""

    def text(name: str, dtype: pl.DataType) -> pl.Expr:
        column = pl.col(name)
        if dtype == pl.String:
            return column
        if isinstance(dtype, pl.Datetime):
            return column.dt.strftime("%Y-%m-%d %H:%M:%S%.f")
        if dtype == pl.Boolean:
            return pl.when(column).then(pl.lit("true")).otherwise(pl.lit("false"))
        if isinstance(dtype, pl.List | pl.Struct | pl.Array):
            return column.map_elements(json.dumps, return_dtype=pl.String)
        return column.cast(pl.String)

    return frame.with_columns(
        text(name, dtype).alias(name)
        for name, dtype in frame.schema.items()
        if name not in (LINE, BAD_ROW)
    )


def _read_excel(path: Path) -> pl.DataFrame:
    try:
        frame = pl.read_excel(path, engine="calamine", infer_schema_length=0)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = f"{path} is not an Excel workbook: {first}"
        raise IngestError(msg) from None
    # the header is sheet row 1, so the first row of data is row 2
    return (
        _strings(frame)
        .with_row_index(LINE, offset=2)
        .with_columns(pl.col(LINE).cast(pl.Int64), pl.lit(None, pl.String).alias(BAD_ROW))
    )


def _text_lines(path: Path, encoding: str) -> Iterable[str]:
    """The file's text, decoded as a stream (GB18030 and GBK included, a UTF-8 BOM dropped);
    a byte the encoding cannot read is :class:`IngestError` naming the line."""
    codec = "utf-8-sig" if encoding == "utf-8" else encoding
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    line = 1
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(_CHUNK_BYTES)
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                good = chunk[: exc.start]
                where = line + good.count(b"\n")
                msg = (
                    f"{path} line {where}: not {encoding} text (byte 0x{chunk[exc.start]:02x}); "
                    "set the mapping's encoding (utf-8, gb18030, gbk)"
                )
                raise IngestError(msg) from None
            line += chunk.count(b"\n")
            if text:
                yield text
            if not chunk:
                return


def _sniff(path: Path, encoding: str) -> str:
    head = ""
    for text in _text_lines(path, encoding):
        head += text
        if len(head) >= _SNIFF_BYTES:
            break
    first = head.split("\n", 1)[0]
    counts = {d: first.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _read_csv(path: Path, *, encoding: str, delimiter: str | None) -> pl.DataFrame:
    separator = delimiter or _sniff(path, encoding)
    # the csv module splits quoted delimiters and newlines exactly and tells each row's line
    stream = io.StringIO("".join(_text_lines(path, encoding)), newline="")
    reader = csv.reader(stream, delimiter=separator, strict=False)
    header = next(reader, None)
    if header is None or not any(h.strip() for h in header):
        msg = f"{path} is empty"
        raise IngestError(msg)
    names = [h.strip() for h in header]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        msg = f"{path} line 1: the column {twice!r} appears twice in the header"
        raise IngestError(msg)
    width = len(names)
    rows: list[list[str]] = []
    lines: list[int] = []
    problems: list[str | None] = []
    start = reader.line_num + 1
    for row in reader:
        if not row:  # a blank line: no row at all
            start = reader.line_num + 1
            continue
        lines.append(start)
        if len(row) == width:
            rows.append(row)
            problems.append(None)
        else:
            problems.append(f"{len(row)} fields where the header has {width}")
            rows.append([*row[:width], *([""] * (width - len(row)))])
        start = reader.line_num + 1
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    frame = pl.DataFrame(
        {
            name: pl.Series(name, list(values), pl.String)
            for name, values in zip(names, columns, strict=True)
        }
    )
    return frame.with_columns(
        pl.Series(LINE, lines, pl.Int64), pl.Series(BAD_ROW, problems, pl.String)
    )
