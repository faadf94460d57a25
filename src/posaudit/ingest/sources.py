"""Source files: SOURCE arguments expanded to files, each read as blocks of strings.

Every format arrives the same way: one String column per source column, as the file spells
it, and ``source_line``, where an analyst finds the row (CSV: the physical line, the header
being line 1; Excel: the sheet row; Parquet and JSON lines: the row number from 1). A row that
does not split into the header's fields (a truncated last line, a stray quote) is kept with
``bad_row`` set, so that it is counted and quarantined rather than lost.

A file is opened in two steps. :func:`open_source` reads its header only, so that a file that
cannot be read, or lacks a column, is refused before an ingest touches its store. Then
:meth:`SourceRows.blocks` gives its rows in blocks of bounded size, so that a file of any size
is read in a bounded amount of memory.
"""

from __future__ import annotations

import codecs
import csv
import glob
import hashlib
import io
import json
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, TypeVar

import polars as pl
import pyarrow.parquet as pq

from posaudit.ingest.mapping import IngestError

T = TypeVar("T")
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
_CHUNK_BYTES: Final = 1 << 20
# Rows per block where the csv module splits, and where Excel, Parquet and JSON lines are cut.
_BATCH_ROWS: Final = 100_000
# CSV text decoded and split at once: large enough that Polars' per-call cost vanishes, small
# enough that a block's frames stay a small part of the memory an ingest may take.
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
            while chunk := handle.read(_CHUNK_BYTES * 8):
                digest.update(chunk)
                size += len(chunk)
    except IsADirectoryError:
        msg = f"{path} is a folder"
        raise IngestError(msg) from None
    if size == 0:
        msg = f"{path} is empty"
        raise IngestError(msg)
    return SourceFile(path, kind, digest.hexdigest(), size)  # type: ignore[arg-type]


class SourceRows:
    """A source file with its header read: its ``columns``, and its rows in :meth:`blocks`.

    Each block is a frame of one String column per source column, ``source_line`` and
    ``bad_row`` (null for a row that splits into the header's fields, else the problem in
    words), in the file's order. A header and no row gives no block (no lockouts that month).
    """

    def __init__(
        self, source: SourceFile, columns: list[str], blocks: Callable[[], Iterator[pl.DataFrame]]
    ):
        self.source = source
        self.columns = columns
        self._blocks = blocks

    def blocks(self) -> Iterator[pl.DataFrame]:
        """The file's rows, in blocks; read from the file again at each call. Each block is
        read on a thread of its own while the caller works on the one before."""
        return ahead(self._blocks())

    def empty(self) -> pl.DataFrame:
        """A frame with the blocks' columns and no row."""
        return pl.DataFrame(
            {c: pl.Series(c, [], pl.String) for c in self.columns}
            | {LINE: pl.Series(LINE, [], pl.Int64), BAD_ROW: pl.Series(BAD_ROW, [], pl.String)}
        )


def ahead(blocks: Iterator[T], depth: int = 2) -> Iterator[T]:
    """``blocks``, produced on a reader thread up to ``depth`` ahead of the caller: decoding
    and splitting (much of it outside the GIL) overlap the work done on the block before. An
    error of the reader is raised to the caller; a caller that stops early stops the reader."""
    handed: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(kind: str, value: object) -> bool:
        while not stop.is_set():
            try:
                handed.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for block in blocks:
                if not offer("block", block):
                    return
            offer("done", None)
        except BaseException as exc:  # raised again on the caller's thread
            offer("error", exc)

    reader = threading.Thread(target=read, name="posaudit-reader", daemon=True)
    reader.start()
    try:
        while True:
            kind, value = handed.get()
            if kind == "block":
                yield value  # type: ignore[misc]
            elif kind == "error":
                raise value  # type: ignore[misc]
            else:
                return
    finally:
        stop.set()
        reader.join()


def open_source(
    source: SourceFile, *, encoding: str = "utf-8", delimiter: str | None = None
) -> SourceRows:
    """The file with its header read; :class:`IngestError` when it has none or is not of its
    format. A CSV file's delimiter, unless given, is the one its header holds most of."""
    path = source.path
    if source.format == "csv":
        return _open_csv(source, encoding=encoding, delimiter=delimiter)
    if source.format == "parquet":
        try:
            columns = list(pq.ParquetFile(path).schema_arrow.names)
        except Exception as exc:  # pyarrow raises several kinds for a file that is not Parquet
            raise IngestError(f"{path} is not a Parquet file: {_first_line(exc)}") from None
        return SourceRows(source, columns, lambda: _parquet_blocks(path))
    frame = _read_excel(path) if source.format == "xlsx" else _read_ndjson(path)
    columns = [c for c in frame.columns if c not in (LINE, BAD_ROW)]
    frame = frame.select(*columns, LINE, BAD_ROW)
    return SourceRows(
        source,
        columns,
        lambda: (frame.slice(s, _BATCH_ROWS) for s in range(0, frame.height, _BATCH_ROWS)),
    )


def read_source(
    source: SourceFile, *, encoding: str = "utf-8", delimiter: str | None = None
) -> pl.DataFrame:
    """All the rows of a source file in one frame (for small files and tests: an ingest reads
    :meth:`SourceRows.blocks`)."""
    rows = open_source(source, encoding=encoding, delimiter=delimiter)
    return pl.concat([rows.empty(), *rows.blocks()], how="vertical")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_ndjson(path: Path) -> pl.DataFrame:
    try:
        frame = pl.read_ndjson(path, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise IngestError(f"{path} is not a JSON lines file: {_first_line(exc)}") from None
    return (
        _strings(frame)
        .with_row_index(LINE, offset=1)
        .with_columns(pl.col(LINE).cast(pl.Int64), pl.lit(None, pl.String).alias(BAD_ROW))
    )


def _parquet_blocks(path: Path) -> Iterator[pl.DataFrame]:
    line = 1
    for batch in pq.ParquetFile(path).iter_batches(batch_size=_BATCH_ROWS):
        frame = _strings(pl.from_arrow(batch))  # type: ignore[arg-type]
        yield frame.with_columns(
            pl.int_range(line, line + frame.height, dtype=pl.Int64).alias(LINE),
            pl.lit(None, pl.String).alias(BAD_ROW),
        )
        line += frame.height


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
        raise IngestError(f"{path} is not an Excel workbook: {_first_line(exc)}") from None
    # the header is sheet row 1, so the first row of data is row 2
    return (
        _strings(frame)
        .with_row_index(LINE, offset=2)
        .with_columns(pl.col(LINE).cast(pl.Int64), pl.lit(None, pl.String).alias(BAD_ROW))
    )


# -- CSV ----------------------------------------------------------------------------------------
def _codec(encoding: str) -> str:
    return "utf-8-sig" if encoding == "utf-8" else encoding


def _not_text(path: Path, line: int, byte: int, encoding: str) -> IngestError:
    return IngestError(
        f"{path} line {line}: not {encoding} text (byte 0x{byte:02x}); "
        "set the mapping's encoding (utf-8, gb18030, gbk)"
    )


def _header_bytes(path: Path) -> bytes:
    """The file's first line, its line feed included (the whole file when it has none)."""
    head = b""
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            cut = chunk.find(b"\n")
            if cut >= 0:
                return head + chunk[: cut + 1]
            head += chunk
    return head


def _open_csv(source: SourceFile, *, encoding: str, delimiter: str | None) -> SourceRows:
    path = source.path
    raw = _header_bytes(path)
    try:
        first = raw.decode(_codec(encoding))
    except UnicodeDecodeError as exc:
        raise _not_text(path, 1, raw[exc.start], encoding) from None
    line = first.rstrip("\n").removesuffix("\r")
    separator = delimiter or _sniff(line)
    if '"' in line or "\r" in line:
        # a quoted header (or one with a stray carriage return): the csv module reads the file
        with path.open(encoding=_codec(encoding), errors="strict", newline="") as text:
            header = next(csv.reader(text, delimiter=separator, strict=False), None)
        names = _names(path, header)
        return SourceRows(
            source,
            names,
            lambda: _csv_module_blocks(path, encoding, separator, None, offset=0, line=1),
        )
    names = _names(path, next(csv.reader([line], delimiter=separator, strict=False), None))
    return SourceRows(
        source, names, lambda: _csv_blocks(path, encoding, separator, names, offset=len(raw))
    )


def _names(path: Path, header: list[str] | None) -> list[str]:
    if header is None or not any(h.strip() for h in header):
        raise IngestError(f"{path} is empty")
    names = [h.strip() for h in header]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise IngestError(f"{path} line 1: the column {twice!r} appears twice in the header")
    return names


def _sniff(first: str) -> str:
    counts = {d: first.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


class _Unusual(Exception):
    """A block the fast reader leaves to the csv module: a quoted field spanning lines, a
    carriage return that does not end a line."""


def _csv_blocks(
    path: Path, encoding: str, separator: str, names: list[str], *, offset: int
) -> Iterator[pl.DataFrame]:
    """The rows after the header, block by block: each block is cut at a line feed, decoded
    and split by Polars (lines with a quote by the csv module, one line at a time). From a
    block where a line does not hold its own record on, the csv module reads the rest.

    A line feed byte is never part of a multi-byte character in UTF-8, GB18030 or GBK, so a
    block cut there decodes on its own.
    """
    decoder = codecs.getincrementaldecoder(_codec(encoding))(errors="strict")
    line = 2  # the physical line of the block's first line
    with path.open("rb") as handle:
        handle.seek(offset)
        rest = b""
        start = offset  # the byte offset of ``rest``
        while True:
            chunk = handle.read(_BLOCK_BYTES)
            data = rest + chunk
            last = not chunk
            if last and not data:
                return
            cut = len(data) if last else data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            block, rest = data[:cut], data[cut:]
            if block:
                try:
                    text = decoder.decode(block, final=last)
                except UnicodeDecodeError as exc:
                    where = line + block.count(b"\n", 0, exc.start)
                    raise _not_text(path, where, block[exc.start], encoding) from None
                try:
                    if text.count("\r") != text.count("\r\n"):
                        raise _Unusual
                    ends_open = not text.endswith("\n")
                    body = text if ends_open else text[:-1]
                    frame, count = _split_block(
                        body, line, names, separator, final=last and ends_open
                    )
                except _Unusual:
                    yield from _csv_module_blocks(
                        path, encoding, separator, names, offset=start, line=line
                    )
                    return
                yield frame
                line += count
                start += cut
            if last:
                return


def _csv_module_blocks(
    path: Path, encoding: str, separator: str, names: list[str] | None, *, offset: int, line: int
) -> Iterator[pl.DataFrame]:
    """The rows from byte ``offset`` (physical line ``line``) on, split by the csv module in
    frames of at most ``_BATCH_ROWS`` rows; ``names`` None: the first record is the header."""
    with path.open("rb") as handle:
        handle.seek(offset)
        text = io.TextIOWrapper(handle, encoding=_codec(encoding), errors="strict", newline="")
        try:
            yield from _parse_csv(path, text, separator, names, line)
        except UnicodeDecodeError as exc:
            # the stream decodes ahead in blocks, so its error cannot say the line: a second,
            # careful pass finds it
            _find_bad_byte(path, encoding, offset, line)
            raise IngestError(f"{path}: not {encoding} text ({exc.reason})") from None


def _find_bad_byte(path: Path, encoding: str, offset: int, line: int) -> None:
    decoder = codecs.getincrementaldecoder(_codec(encoding))(errors="strict")
    with path.open("rb") as handle:
        handle.seek(offset)
        while True:
            chunk = handle.read(_CHUNK_BYTES)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                where = line + chunk.count(b"\n", 0, exc.start)
                raise _not_text(path, where, chunk[exc.start], encoding) from None
            line += chunk.count(b"\n")
            if not chunk:
                return


def _parse_csv(
    path: Path, text: Iterable[str], separator: str, names: list[str] | None, first_line: int
) -> Iterator[pl.DataFrame]:
    """The rows of CSV text in frames of at most ``_BATCH_ROWS`` rows, so that only one batch
    is ever held as Python strings. ``first_line``: the physical line the text begins on."""
    # the csv module splits quoted delimiters and newlines exactly and tells each row's line
    reader = csv.reader(text, delimiter=separator, strict=False)
    shift = first_line - 1
    if names is None:
        names = _names(path, next(reader, None))
    width = len(names)
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

    start = reader.line_num + 1 + shift
    for row in reader:
        if not row:  # a blank line: no row at all
            start = reader.line_num + 1 + shift
            continue
        lines.append(start)
        cells, problem = _fitted(row, width)
        rows.append(cells)
        problems.append(problem)
        start = reader.line_num + 1 + shift
        if len(rows) == _BATCH_ROWS:
            yield batch()
            rows, lines, problems = [], [], []
    if rows:
        yield batch()


def _fitted(row: list[str], width: int) -> tuple[list[str], str | None]:
    """A split row cut or padded with empty cells to the header's ``width``, and the problem
    in words when it had another number of fields (None when it had as many)."""
    if len(row) == width:
        return row, None
    problem = f"{len(row)} fields where the header has {width}"
    return [*row[:width], *([""] * (width - len(row)))], problem


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


def _split_block(
    body: str, first_line: int, names: list[str], separator: str, *, final: bool
) -> tuple[pl.DataFrame, int]:
    """The rows of a block of whole lines (joined by line feeds, the last one's own line feed
    left out), and how many physical lines it held. ``final``: its last line ends the file
    with no line feed.

    Polars' CSV reader, told that no character quotes, gives every physical line as one row:
    once as the whole line (to count its fields, and to find blank lines and quotes), once
    split into the header's fields. A line with a quote is split by the csv module on its own.
    """
    width = len(names)
    count = body.count("\n") + 1
    sentinel = next((c for c in "\x1f\x1e\x1d" if c != separator and c not in body), None)
    if sentinel is None:
        raise _Unusual
    data = (body + "\n").encode("utf-8")
    whole = pl.read_csv(
        data,
        has_header=False,
        new_columns=["l"],
        separator=sentinel,
        quote_char=None,
        infer_schema=False,
    )
    # a first line of as many fields as the header fixes the frame's width; it is dropped
    cells = pl.read_csv(
        (separator * (width - 1) + "\n").encode() + data,
        has_header=False,
        schema=dict.fromkeys(names, pl.String),
        separator=separator,
        quote_char=None,
        truncate_ragged_lines=True,
    ).slice(1)
    if whole.height != count or cells.height != count:
        raise _Unusual  # a line Polars reads otherwise: the csv module reads the rest
    frame = pl.concat(
        [
            whole.select(
                pl.int_range(first_line, first_line + count, dtype=pl.Int64).alias(LINE),
                pl.col("l").str.strip_suffix("\r"),
            ),
            cells,
        ],
        how="horizontal",
    )
    is_quoted = pl.col("l").str.contains('"', literal=True)
    quoted = frame.filter(is_quoted)
    fields = pl.col("l").str.count_matches(separator, literal=True) + 1
    # a blank line is no row at all; an empty cell is "" as the csv module gives it
    plain = frame.filter(pl.col("l").is_not_null() & (pl.col("l") != "") & ~is_quoted).select(
        *(pl.col(n).fill_null("") for n in names),
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
        cells, problem = _fitted(row, width)
        rows.append(cells)
        problems.append(problem)
    columns = list(zip(*rows, strict=True))
    parsed = pl.DataFrame(
        {n: pl.Series(n, list(v), pl.String) for n, v in zip(names, columns, strict=True)}
    ).with_columns(quoted[LINE], pl.Series(BAD_ROW, problems, pl.String))
    return pl.concat([plain, parsed]).sort(LINE), count
