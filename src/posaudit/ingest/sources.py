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
_BATCH_ROWS: Final = 100_000
# Decoded and split at once: large enough that Polars' per-call cost vanishes, small enough
# that the decoded text of one block stays a small part of the frame it becomes.
_BLOCK_BYTES: Final = 16 << 20


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
    codec = "utf-8-sig" if encoding == "utf-8" else encoding
    try:
        return _split_csv(path, codec, separator)
    except (_Unusual, UnicodeDecodeError):
        # the careful reader below handles what the fast one does not, and names bad bytes
        pass
    try:
        with path.open(encoding=codec, errors="strict", newline="") as text:
            return _parse_csv(path, text, separator)
    except UnicodeDecodeError as exc:
        # the stream decodes ahead in blocks, so its error cannot say the line: a second,
        # careful pass finds it and raises IngestError naming it
        for _ in _text_lines(path, encoding):
            pass
        msg = f"{path}: not {encoding} text ({exc.reason})"
        raise IngestError(msg) from None


def _parse_csv(path: Path, text: Iterable[str], separator: str) -> pl.DataFrame:
    """The rows of CSV text, in frames of at most ``_BATCH_ROWS`` rows stacked at the end, so
    that only one batch is ever held as Python strings."""
    # the csv module splits quoted delimiters and newlines exactly and tells each row's line
    reader = csv.reader(text, delimiter=separator, strict=False)
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
    batches: list[pl.DataFrame] = []
    rows: list[list[str]] = []
    lines: list[int] = []
    problems: list[str | None] = []

    def batch() -> pl.DataFrame:
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
        if len(rows) == _BATCH_ROWS:
            batches.append(batch())
            rows, lines, problems = [], [], []
    if rows or not batches:
        batches.append(batch())
    return pl.concat(batches, rechunk=True)


class _OneLine:
    """One line for the csv module, noting whether it asked for another (a record that does
    not end on this line)."""

    def __init__(self, text: str) -> None:
        self.text: str | None = text
        self.asked_again = False

    def __iter__(self) -> _OneLine:
        return self

    def __next__(self) -> str:
        if self.text is None:
            self.asked_again = True
            raise StopIteration
        text, self.text = self.text, None
        return text


class _Unusual(Exception):
    """A file the fast reader leaves to the csv module: a quoted field spanning lines, a
    quoted header, a carriage return that does not end a line."""


def _blocks(path: Path, codec: str) -> Iterable[tuple[str, bool]]:
    """The file's text in blocks that end at a line feed (the last one maybe not), and
    whether the block is the file's last. A line feed byte is never part of a multi-byte
    character in UTF-8, GB18030 or GBK, so a block cut there decodes on its own."""
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    rest = b""
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(_BLOCK_BYTES)
            data = rest + chunk
            if not chunk:
                if data:
                    yield decoder.decode(data, final=True), True
                return
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            rest = data[cut:]
            yield decoder.decode(data[:cut]), False


def _split_csv(path: Path, codec: str, separator: str) -> pl.DataFrame:
    """The rows of a CSV file as :func:`_parse_csv` gives them, the same cells, lines and
    problems, with the lines that hold no quote split by Polars; a line with a quote is
    split by the csv module on its own. Raises :class:`_Unusual` where the two could differ."""
    names: list[str] | None = None
    line = 1  # the physical line of the block's first line
    frames: list[pl.DataFrame] = []
    for text, last in _blocks(path, codec):
        if text.count("\r") != text.count("\r\n"):
            raise _Unusual
        ends_open = not text.endswith("\n")
        body = text if ends_open else text[:-1]
        if names is None:
            first, sep, body = body.partition("\n")
            if '"' in first:
                raise _Unusual
            header = next(csv.reader([first + "\n"], delimiter=separator, strict=False), [])
            names = [h.strip() for h in header]
            if not any(names) or len(set(names)) != len(names):
                raise _Unusual  # refused by the csv reader, in its words
            line = 2
            if not sep:
                continue
        frame, count = _split_block(body, line, names, separator, final=last and ends_open)
        frames.append(frame)
        line += count
    if names is None:
        raise _Unusual
    if not frames:
        empty = {n: pl.Series(n, [], pl.String) for n in names}
        return pl.DataFrame(empty).with_columns(
            pl.Series(LINE, [], pl.Int64), pl.Series(BAD_ROW, [], pl.String)
        )
    return pl.concat(frames, rechunk=True)


def _split_block(
    body: str, first_line: int, names: list[str], separator: str, *, final: bool
) -> tuple[pl.DataFrame, int]:
    """The rows of a block of whole lines (joined by line feeds, the last one's own line feed
    left out), and how many physical lines it held. ``final``: its last line ends the file
    with no line feed."""
    width = len(names)
    lines = pl.Series("l", [body]).str.split("\n").explode()
    count = lines.len()
    frame = pl.DataFrame([lines]).with_row_index(LINE, offset=first_line)
    frame = frame.with_columns(pl.col(LINE).cast(pl.Int64), pl.col("l").str.strip_suffix("\r"))
    quoted = frame.filter(pl.col("l").str.contains('"', literal=True))
    plain = frame.filter(~pl.col("l").str.contains('"', literal=True) & (pl.col("l") != ""))
    fields = pl.col("l").str.count_matches(separator, literal=True) + 1
    cells = pl.col("l").str.split_exact(separator, width - 1).struct
    plain = plain.select(
        *(cells.field(f"field_{i}").fill_null("").alias(n) for i, n in enumerate(names)),
        pl.col(LINE),
        pl.when(fields != width)
        .then(pl.format(f"{{}} fields where the header has {width}", fields))
        .alias(BAD_ROW),
    )
    if quoted.height == 0:
        return plain, count
    rows: list[list[str]] = []
    problems: list[str | None] = []
    for number, text in quoted.select(LINE, "l").iter_rows():
        ends_file = final and number == first_line + count - 1
        source = _OneLine(text if ends_file else text + "\n")
        row = next(csv.reader(source, delimiter=separator, strict=False), [])
        if source.asked_again and not ends_file:
            raise _Unusual  # a quoted field goes on past this line
        if len(row) == width:
            rows.append(row)
            problems.append(None)
        else:
            problems.append(f"{len(row)} fields where the header has {width}")
            rows.append([*row[:width], *([""] * (width - len(row)))])
    columns = list(zip(*rows, strict=True))
    parsed = pl.DataFrame(
        {n: pl.Series(n, list(v), pl.String) for n, v in zip(names, columns, strict=True)}
    ).with_columns(quoted[LINE], pl.Series(BAD_ROW, problems, pl.String))
    return pl.concat([plain, parsed]).sort(LINE), count
