"""Reading sources: CSV in UTF-8, GB18030 and GBK with Chinese headers, any delimiter, quoted
fields; Excel, Parquet and JSON lines; folders and globs; each row with its line."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from posaudit.ingest.mapping import IngestError
from posaudit.ingest.sources import describe, read_source, source_files

CHINESE = '终端编号,交易金额(元),交易类型\nT1,"1,234.56",消费\nT2,12.30,退货\n'


def read(path: Path, **options: str) -> pl.DataFrame:
    return read_source(describe(path), **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("encoding", ["gb18030", "gbk"])
def test_chinese_headers_in_gb18030_and_gbk(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "交易明细.csv"
    path.write_bytes(CHINESE.replace("\n", "\r\n").encode(encoding))
    frame = read(path, encoding=encoding)
    assert frame.columns[:3] == ["终端编号", "交易金额(元)", "交易类型"]
    assert frame["交易金额(元)"].to_list() == ["1,234.56", "12.30"]
    assert frame["交易类型"].to_list() == ["消费", "退货"]
    assert frame["source_line"].to_list() == [2, 3]


def test_a_wrong_encoding_is_one_line_naming_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "交易明细.csv"
    path.write_bytes(CHINESE.encode("gb18030"))
    with pytest.raises(
        IngestError, match=re.escape("交易明细.csv line 1: not utf-8 text")
    ) as raised:
        read(path, encoding="utf-8")
    assert "\n" not in str(raised.value)


def test_utf8_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes("\ufeffid,name\n1,商户\n".encode())
    assert read(path).columns[:2] == ["id", "name"]


def test_a_semicolon_delimited_file_is_sniffed(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id;amount\n1;1,50\n2;3,00\n")
    frame = read(path)
    assert frame["amount"].to_list() == ["1,50", "3,00"]
    # the mapping's delimiter wins over the sniffing
    assert read(path, delimiter=",").columns[:2] == ["id;amount", "source_line"]


def test_quoted_fields_hold_delimiters_quotes_and_newlines(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text('id,name,note\n1,"Li, Ming","said ""hi""\nthen left"\n2,Wu,plain\n')
    frame = read(path)
    assert frame["name"].to_list() == ["Li, Ming", "Wu"]
    assert frame["note"].to_list() == ['said "hi"\nthen left', "plain"]
    # the second row starts on line 4: the first took lines 2 and 3
    assert frame["source_line"].to_list() == [2, 4]
    assert frame["bad_row"].to_list() == [None, None]


def test_a_row_that_does_not_split_into_the_headers_fields_is_kept_as_bad(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id,name,note\n1,a,b\n2,c,d,e\n3,tru")
    frame = read(path)
    assert frame["source_line"].to_list() == [2, 3, 4]
    assert frame["bad_row"].to_list() == [
        None,
        "4 fields where the header has 3",
        "2 fields where the header has 3",
    ]


def test_excel_parquet_and_json_lines(tmp_path: Path) -> None:
    data = pl.DataFrame({"id": ["T1", "T2"], "amount": [1.5, 20.0], "n": [3, 4]})
    data.write_excel(tmp_path / "a.xlsx")
    data.write_parquet(tmp_path / "a.parquet")
    data.write_ndjson(tmp_path / "a.jsonl")
    excel = read(tmp_path / "a.xlsx")
    assert excel["id"].to_list() == ["T1", "T2"]
    assert excel["n"].to_list() == ["3", "4"]
    assert excel["source_line"].to_list() == [2, 3]  # the sheet's rows, under its header
    for name in ("a.parquet", "a.jsonl"):
        frame = read(tmp_path / name)
        assert frame["id"].to_list() == ["T1", "T2"], name
        assert frame["amount"].to_list() == ["1.5", "20.0"], name
        assert frame["source_line"].to_list() == [1, 2], name
        assert frame.schema["n"] == pl.String, name


def test_folders_and_globs_expand_to_files_each_once(tmp_path: Path) -> None:
    (tmp_path / "in" / "deep").mkdir(parents=True)
    for name in ("in/a.csv", "in/deep/b.csv", "in/notes.md"):
        (tmp_path / name).write_text("x\n1\n")
    files = source_files([tmp_path / "in", str(tmp_path / "in" / "*.csv")])
    assert files == [tmp_path / "in/a.csv", tmp_path / "in/deep/b.csv"]


def test_missing_and_empty_sources_are_refused(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match=re.escape("none.csv does not exist")):
        source_files([tmp_path / "none.csv"])
    with pytest.raises(IngestError, match="matches no file"):
        source_files([str(tmp_path / "*.csv")])
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(IngestError, match=re.escape("empty.csv is empty")):
        describe(tmp_path / "empty.csv")
    (tmp_path / "blank.csv").write_text("\n\n")
    with pytest.raises(IngestError, match=re.escape("blank.csv is empty")):
        read(tmp_path / "blank.csv")
    (tmp_path / "a.doc").write_text("x")
    with pytest.raises(IngestError, match=re.escape("not .doc")):
        describe(tmp_path / "a.doc")


def test_rows_read_in_batches_keep_their_order_and_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("posaudit.ingest.sources._BATCH_ROWS", 2)
    path = tmp_path / "a.csv"
    path.write_text('id,note\n1,a\n2,"b\nc"\n\n3,d\n4,e,f\n5,g\n')
    frame = read(path)
    assert frame["id"].to_list() == ["1", "2", "3", "4", "5"]
    assert frame["source_line"].to_list() == [2, 3, 6, 7, 8]
    assert frame["bad_row"].null_count() == 4


_TRICKY = {
    "quoted amounts, CRLF": (
        'id,amount,note\r\n1,"1,234.56",a\r\n2,5.00,b\r\n3,"7,000.00","x""y"\r\n'
    ),
    "bad field counts": "id,amount,note\n1,2\n2,3,4,5\n\n3,4,5\n,,\n",
    "truncated last line": 'id,amount,note\n1,2,3\n2,"1,2',
    "truncated, no quote": "id,amount,note\n1,2,3\n2,1",
    "quote inside a field": 'id,amount,note\n1,a"b,c\n2,"q"r,s\n',
    "quoted newline": 'id,amount,note\n1,"a\nb",c\n2,d,e\n',
    "lone carriage return": "id,amount,note\n1,a\rb,c\n",
    "header only": "id,amount,note\n",
    "header and blank lines": "id,amount,note\r\n\r\n\r\n",
    "one column": "id\n1\n\n2\n",
    "tabs": "id\tamount\tnote\n1\t2\t3\n4\t5\n",
    "empty cells, CRLF": "id,amount,note\r\n1,,\r\n,,\r\n2,3,\r\n\r\n,4,\r\n",
    "control characters in cells": "id,amount,note\n1,a\x1fb,c\x1e\n2,\x1d,\n",
}


@pytest.mark.parametrize("name", sorted(_TRICKY))
@pytest.mark.parametrize("block", [7, 1 << 20])
def test_the_block_reader_gives_what_the_csv_module_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, block: int
) -> None:
    """Lines without a quote are split by Polars, block by block; a line with one by the csv
    module; from a line that does not hold its own record on, the csv module reads the rest.
    Whatever the block size, the cells, lines and problems are the csv module's own."""
    from polars.testing import assert_frame_equal

    from posaudit.ingest import sources

    monkeypatch.setattr(sources, "_BLOCK_BYTES", block)
    path = tmp_path / "a.csv"
    path.write_bytes(_TRICKY[name].encode("gb18030"))
    separator = "\t" if name == "tabs" else ","
    source = describe(path)
    rows = sources.open_source(source, encoding="gb18030", delimiter=separator)
    alone = sources._csv_module_blocks(path, "gb18030", separator, None, offset=0, line=1)
    expected = pl.concat([rows.empty(), *alone])
    assert_frame_equal(read_source(source, encoding="gb18030", delimiter=separator), expected)
