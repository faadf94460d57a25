"""Build a run's audit report: HTML, PDF, Excel workbook, and the findings as CSV and Parquet.

One pass reads the run from the store (:mod:`posaudit.report.data`), turns every finding into
the words of the chosen language with operators masked when asked
(:mod:`posaudit.report.translations`, :mod:`posaudit.report.pseudonyms`), and renders:

- HTML: one self-contained file (inline CSS, charts as inline SVG, no external reference),
  Jinja2 with autoescaping, so any string from the data shows as text; its tables sort and
  filter in a browser through one inline script (:mod:`posaudit.report.tables`);
- PDF: the same template through WeasyPrint: A4, table of contents with page numbers,
  running headers, page numbers, the report's font named everywhere (Chinese draws);
- Excel: a summary sheet and one sheet per family, with filters and frozen headers;
- CSV and Parquet: every finding of the run, with its sentence in the chosen language.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import re
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path, PurePath
from typing import Any, Final, Literal

import polars as pl
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from posaudit import __version__
from posaudit.atomic import written_file
from posaudit.detect.findings import SEVERITIES, SEVERITY_RANK
from posaudit.palette import SEVERITY_COLORS
from posaudit.pins import pin_digester
from posaudit.report import charts
from posaudit.report import classics as report_classics
from posaudit.report.data import (
    AGEING_BUCKETS,
    FAMILY_ORDER,
    OLDEST_LISTED,
    SEVERITY_ORDER,
    MoneyAtRisk,
    PinHygiene,
    ReportData,
    ReportError,
    ageing_counts,
    change_counts,
    family_severity_counts,
    fee_leakage,
    headline_findings,
    load_report_data,
    money_at_risk,
    pin_hygiene,
    review_counts,
    set_aside_counts,
    top_entities,
    top_merchants,
    undecided_ages,
)
from posaudit.report.pdf import die_with_parent, missing_font, write_pdf
from posaudit.report.pseudonyms import Pseudonyms
from posaudit.report.tables import table_assets
from posaudit.report.translations import (
    AGE_BUCKETS,
    DECISIONS,
    ENTITY_TYPES,
    FAMILIES,
    FAMILY_INTROS,
    PARAMETERS,
    QUARANTINE_REASONS,
    REVIEW_STATUSES,
    RULE_DESCRIPTIONS_ZH,
    RULES,
    SEVERITY_GLOSSARY,
    STATUSES,
    TABLES,
    WEAKNESS_CLASSES,
    FindingFacts,
    Language,
    english_count,
    evidence_items,
    finding_sentence,
    label,
    money_text,
    text,
)
from posaudit.report.translations import (
    SEVERITIES as SEVERITY_LABELS,
)
from posaudit.review.trail import COLUMNS as TRAIL_COLUMNS
from posaudit.store import Store
from posaudit.untrusted import csv_safe, readable_text
from posaudit.untrusted import shown as shown_text

Format = Literal["html", "pdf", "xlsx", "csv", "parquet"]
FORMATS: Final[tuple[Format, ...]] = ("html", "pdf", "xlsx", "csv", "parquet")
TOP_FINDINGS: Final = 10
TOP_ENTITIES: Final = 10
# Paper has a limit the screen does not: past this many findings the PDF's appendix lists the
# most severe ones and points to the HTML, workbook and CSV, which hold them all.
PDF_APPENDIX_LIMIT: Final = 500
EVIDENCE_LIST_ITEMS: Final = 6
# Default PINs and shared-PIN groups listed in the PIN section; the workbook holds them all.
PIN_LIST_LIMIT: Final = 20
# Reviews the appendix lists, newest first; the workbook holds every one.
TRAIL_LISTED: Final = 200
# A note as the appendix shows it: its first words, the whole note in the workbook.
NOTE_SHOWN_CHARACTERS: Final = 160
# Hex digits of a review's digest the appendix shows: enough to find it in the trail.
DIGEST_SHOWN: Final = 12
# A PIN digest is 64 hex digits; no evidence value may look like one.
_DIGEST: Final = re.compile(r"\b[0-9a-fA-F]{64}\b")
_PIN_WORD: Final = re.compile(r"\bpin(?=s?\b)")


@dataclass(frozen=True)
class ReportResult:
    """What a report run wrote."""

    run_id: str
    paths: dict[str, Path]
    findings: int
    fallbacks: int  # findings whose sentence fell back to the English summary
    seconds: dict[str, float] = field(default_factory=dict)


def parse_formats(value: str) -> tuple[Format, ...]:
    """``"html,pdf"`` -> ("html", "pdf"); raises ReportError naming an unknown format."""
    wanted = [part.strip().lower() for part in value.split(",") if part.strip()]
    unknown = [part for part in wanted if part not in FORMATS]
    if unknown or not wanted:
        named = ", ".join(unknown) or repr(value)
        msg = f"unknown report format {named}: choose from {','.join(FORMATS)}"
        raise ReportError(msg)
    return tuple(f for f in FORMATS if f in wanted)


# -- findings in the report's words ------------------------------------------------------------


def _scrub(evidence: dict[str, Any]) -> dict[str, Any]:
    """Evidence without anything that could be a PIN digest (defence in depth)."""
    return {
        key: ("[removed]" if isinstance(value, str) and _DIGEST.search(value) else value)
        for key, value in evidence.items()
        if "digest" not in key.lower()
    }


def localized_findings(
    findings: pl.DataFrame, *, lang: Language, pseudonyms: Pseudonyms
) -> tuple[pl.DataFrame, int]:
    """The findings with their sentence, evidence, entity and operator as the report shows them.

    Adds ``sentence`` (the rule's sentence in ``lang``, with the facts its stored summary
    states), ``evidence_shown`` (JSON, masked), ``entity_shown``, ``operator_shown`` and
    ``is_fallback``; returns the frame and how many sentences fell back to the stored English
    summary (a rule without a sentence, or a summary an earlier version of its rule wrote).
    """
    sentences, evidence_shown, entities, operators, fallbacks = [], [], [], [], []
    for row in findings.select(
        "rule",
        "entity_type",
        "entity_id",
        "summary",
        "evidence",
        "operator_id",
        "operator_name",
        "terminal_id",
    ).iter_rows(named=True):
        evidence = _scrub(json.loads(row["evidence"]) if row["evidence"] else {})
        ids = [
            i
            for i in [
                row["operator_id"],
                *(evidence.get("other_operator_ids") or []),
                *(evidence.get("operator_ids") or []),
            ]
            if i
        ]
        # Both languages state the facts of the rule's stored summary, through the one sentence
        # the rule declares in both: the English sentence is the summary itself.
        facts = FindingFacts(
            rule=row["rule"], summary=row["summary"], operator_ids=tuple(ids), pseudonyms=pseudonyms
        )
        sentence = finding_sentence(facts, lang)
        fallback = sentence is None
        if sentence is None:
            sentence = pseudonyms.text(
                row["summary"], operator_ids=ids, terminal_id=row["terminal_id"]
            )
        sentences.append(sentence)
        fallbacks.append(fallback)
        evidence_shown.append(
            json.dumps(
                pseudonyms.evidence(evidence, terminal_id=row["terminal_id"]), ensure_ascii=False
            )
        )
        entities.append(
            pseudonyms.operator(row["entity_id"])
            if row["entity_type"] == "operator"
            else row["entity_id"]
        )
        operators.append(_operator_label(row["operator_id"], row["operator_name"], pseudonyms))
    shown = findings.with_columns(
        pl.Series("sentence", sentences, dtype=pl.String),
        pl.Series("evidence_shown", evidence_shown, dtype=pl.String),
        pl.Series("entity_shown", entities, dtype=pl.String),
        pl.Series("operator_shown", operators, dtype=pl.String),
        pl.Series("is_fallback", fallbacks, dtype=pl.Boolean),
    )
    return shown, sum(fallbacks)


def _operator_label(operator_id: str | None, name: str | None, pseudonyms: Pseudonyms) -> str:
    if operator_id is None:
        return ""
    if pseudonyms.enabled:
        return pseudonyms.operator(operator_id)
    return f"{operator_id} · {name}" if name else operator_id


# -- formatting helpers ------------------------------------------------------------------------


def _day(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else "-"


def _stamp(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def _window(start: datetime, end: datetime | None, lang: Language) -> str:
    if end is None:  # a state still held: an open finding
        return text("open_since", lang, start=f"{start:%Y-%m-%d}")
    if start.date() == end.date():
        if start.strftime("%H:%M") == end.strftime("%H:%M"):
            return start.strftime("%Y-%m-%d %H:%M")
        if start.time().hour == 0 and start.time().minute == 0 and end.strftime("%H:%M") == "23:59":
            return start.strftime("%Y-%m-%d")
        return f"{start:%Y-%m-%d %H:%M}–{end:%H:%M}"
    return f"{start:%Y-%m-%d} – {end:%Y-%m-%d}"


def _value(value: Any, lang: Language) -> str:
    if isinstance(value, bool):
        return text("yes" if value else "no", lang)
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        items = [_value(v, lang) for v in value[:EVIDENCE_LIST_ITEMS]]
        more = len(value) - EVIDENCE_LIST_ITEMS
        return ", ".join(items) + (f" … (+{more})" if more > 0 else "") if items else "—"
    if value is None:
        return "—"
    return str(value)


def _evidence_items(evidence_json: str, lang: Language) -> list[tuple[str, str]]:
    return evidence_items(json.loads(evidence_json), lang)


def _merchant(merchant_id: str | None, name: str | None) -> str:
    if not merchant_id:
        return "—"
    return f"{merchant_id} {name}" if name else merchant_id


def _finding_rows(frame: pl.DataFrame, lang: Language, *, evidence: bool) -> list[dict[str, Any]]:
    rows = []
    for number, row in enumerate(frame.iter_rows(named=True), start=1):
        rows.append(
            {
                "number": number,
                "severity": row["severity"],
                "severity_label": label(SEVERITY_LABELS, row["severity"], lang),
                "severity_rank": SEVERITY_RANK[row["severity"]],
                "rule": row["rule"],
                "rule_title": label(RULES, row["rule"], lang),
                "family_title": label(FAMILIES, row["family"], lang),
                "entity": row["entity_shown"],
                "entity_type": label(ENTITY_TYPES, row["entity_type"], lang),
                "merchant": _merchant(row["merchant_id"], row["merchant_name"]),
                "when": _window(row["window_start"], row["window_end"], lang),
                "window_start": row["window_start"].isoformat(),
                "sentence": _first_upper(row["sentence"]),
                "score": f"{row['rank_score']:.2f}",
                "score_value": row["rank_score"],
                "is_new": row["is_new"],
                "finding_id": row["finding_id"],
                "evidence": _evidence_items(row["evidence_shown"], lang) if evidence else [],
            }
        )
    return rows


# -- the page's sections -----------------------------------------------------------------------


def _severity_labels(lang: Language) -> dict[str, str]:
    return {s: label(SEVERITY_LABELS, s, lang) for s in SEVERITY_ORDER}


def _scope(
    data: ReportData, lang: Language, pseudonyms: Pseudonyms, generated_at: datetime
) -> dict[str, Any]:
    run = data.run
    hash_note = text("policy_verified" if data.policy_verified else "policy_unverified", lang)
    rows = [
        (text("store", lang), data.store_name),
        (text("run", lang), run.run_id),
        (text("run_started", lang), _stamp(run.started_at)),
        (text("run_finished", lang), _stamp(run.finished_at)),
        (text("data_window", lang), f"{_stamp(run.data_from)} – {_stamp(run.data_to)}"),
        (
            text("population", lang),
            text("population_value", lang, **{k: f"{v:,}" for k, v in data.population.items()}),
        ),
        (text("rows_read", lang), f"{run.rows_read:,}" if run.rows_read is not None else "-"),
        (text("previous_run", lang), run.previous_run_id or text("none", lang)),
        (text("code_version", lang), f"{run.code_version} / {__version__}"),
        (text("generated_at", lang), generated_at.strftime("%Y-%m-%d %H:%M:%S")),
        (text("masking", lang), text("masking_on" if pseudonyms.enabled else "masking_off", lang)),
    ]
    return {
        "rows": rows,
        "policy_hash": run.policy_hash or "-",
        "policy_note": hash_note,
        "policy_verified": data.policy_verified,
        "policy_changes": [
            {
                "rule": label(RULES, rule, lang),
                "key": key,
                "value": _value(value, lang),
                "default": _value(default, lang),
            }
            for rule, key, value, default in data.policy_changes
        ],
        "ingested": _ingested(data.ingested, lang),
    }


# Hex digits of a file's fingerprint the provenance shows: enough to tell files apart and to
# find the file's row in ingested_files, short enough for a page's width.
FINGERPRINT_SHOWN: Final = 12


def _reasons(reasons: list[dict[str, Any]], lang: Language) -> str:
    if lang == "zh":
        return "、".join(
            f"{label(QUARANTINE_REASONS, r['reason'], lang)} {r['rows']:,} 行" for r in reasons
        )
    return ", ".join(
        f"{r['rows']:,} {label(QUARANTINE_REASONS, r['reason'], lang)}" for r in reasons
    )


def _ingested(files: pl.DataFrame, lang: Language) -> dict[str, Any] | None:
    """The provenance of an ingested store: its files and their counts (None for a simulation)."""
    if files.height == 0:
        return None
    counts = ("rows_read", "rows_loaded", "rows_duplicate", "rows_quarantined")
    totals = {column: f"{files.get_column(column).sum():,}" for column in counts}
    every_reason = (
        files.select(pl.col("quarantined_by_reason").explode().struct.unnest())
        .drop_nulls()
        .group_by("reason")
        .agg(pl.col("rows").sum())
        .sort(["rows", "reason"], descending=[True, False])
    )
    return {
        "files": [
            {
                "name": PurePath(row["file_name"]).name,
                "fingerprint": row["fingerprint"][:FINGERPRINT_SHOWN] + "…",
                "table": label(TABLES, row["target_table"], lang),
                **{column: f"{row[column]:,}" for column in counts},
                "reasons": _reasons(row["quarantined_by_reason"], lang),
            }
            for row in files.iter_rows(named=True)
        ],
        "totals": {**totals, "reasons": _reasons(every_reason.to_dicts(), lang)},
    }


def _share_of(n: int, population: int) -> str:
    """A share of operators, as every figure of the report writes it: '66.5%'."""
    return f"{n / max(population, 1) * 100:.1f}%"


def _money_section(money: MoneyAtRisk, lang: Language) -> dict[str, Any]:
    rows = [
        {
            "family": label(FAMILIES, r["family"], lang),
            "rule": label(RULES, r["rule"], lang),
            "findings": f"{r['findings']:,}",
            "refunds": f"{r['refunds']:,}",
            "amount": money_text(r["amount_fen"], lang),
        }
        for r in money.by_rule.iter_rows(named=True)
    ]
    return {
        "total": money_text(money.total_fen, lang),
        "refunds": f"{money.refunds:,}",
        "rows": rows,
        "unlisted": money_text(money.unlisted_fen, lang) if money.unlisted_fen else "",
    }


def _summary(
    data: ReportData,
    shown: pl.DataFrame,
    lang: Language,
    pseudonyms: Pseudonyms,
    *,
    hygiene: PinHygiene,
    money: MoneyAtRisk,
) -> dict[str, Any]:
    findings = data.findings
    counts = family_severity_counts(findings)
    severity_labels = _severity_labels(lang)
    table = []
    for family in FAMILY_ORDER:
        per = {
            r["severity"]: r["count"]
            for r in counts.filter(pl.col("family") == family).iter_rows(named=True)
        }
        table.append(
            {
                "family": label(FAMILIES, family, lang),
                "counts": [per.get(s, 0) for s in SEVERITY_ORDER],
                "total": sum(per.values()),
            }
        )
    totals = [sum(row["counts"][i] for row in table) for i in range(len(SEVERITY_ORDER))]
    chart = charts.severity_bars(
        counts.with_columns(
            pl.col("family")
            .replace_strict(
                {f: label(FAMILIES, f, lang) for f in FAMILY_ORDER}, default=pl.col("family")
            )
            .alias("family_label")
        ),
        category="family_label",
        category_order=[label(FAMILIES, f, lang) for f in FAMILY_ORDER],
        severity_labels=severity_labels,
        category_title="",
        count_title=text("findings", lang),
        severity_title=text("severity", lang),
    )
    changes = change_counts(findings, data.resolved)
    critical_high = findings.filter(pl.col("severity_rank") >= SEVERITY_RANK["high"]).height
    entities = []
    for row in top_entities(findings, limit=TOP_ENTITIES).iter_rows(named=True):
        name = (
            _operator_label(row["who_id"], row["operator_name"], pseudonyms)
            if row["who_type"] == "operator"
            else row["who_id"]
        )
        entities.append(
            {
                "entity": name,
                "type": label(ENTITY_TYPES, row["who_type"], lang),
                "merchant": _merchant(row["merchant_id"], row["merchant_name"]),
                "count": row["count"],
                "new": row["new"],
                "worst": row["worst"],
                "worst_label": label(SEVERITY_LABELS, row["worst"], lang),
                "families": "、".join(label(FAMILIES, f, lang) for f in row["families"])
                if lang == "zh"
                else ", ".join(label(FAMILIES, f, lang) for f in row["families"]),
            }
        )
    merchants = [
        {
            "merchant": _merchant(row["merchant_id"], row["merchant_name"]),
            "count": row["count"],
            "critical_high": row["critical_high"],
            "worst": row["worst"],
            "worst_label": label(SEVERITY_LABELS, row["worst"], lang),
            "families": ("、" if lang == "zh" else ", ").join(
                label(FAMILIES, f, lang) for f in row["families"]
            ),
        }
        for row in top_merchants(findings, limit=TOP_ENTITIES).iter_rows(named=True)
    ]
    new_total = int(changes.get_column("new").sum())
    resolved_total = int(changes.get_column("resolved").sum())
    points = _key_points(
        data,
        lang,
        merchants=merchants,
        new=new_total,
        resolved=resolved_total,
        hygiene=hygiene,
        money=money,
    )
    return {
        "points": points,
        "tiles": [
            (text("total_findings", lang), f"{findings.height:,}", "total"),
            (text("critical_high", lang), f"{critical_high:,}", "alarm"),
            (text("new_findings", lang), f"{new_total:,}", "new"),
            (text("resolved_findings", lang), f"{resolved_total:,}", "resolved"),
            (text("money_at_risk", lang), money_text(money.total_fen, lang), "money"),
        ],
        "money": _money_section(money, lang),
        "severity_headers": list(severity_labels.items()),
        "table": table,
        "totals": totals,
        "grand_total": findings.height,
        "chart": Markup(charts.chart_svg(chart)),
        "first_run": data.run.previous_run_id is None,
        "changes_intro": text(
            "whats_new_intro",
            lang,
            previous=data.run.previous_run_id or "-",
            new=f"{new_total:,}",
            seen=f"{findings.height - new_total:,}",
            resolved=f"{resolved_total:,}",
        ),
        "changes": [
            {
                "family": label(FAMILIES, r["family"], lang),
                **{k: r[k] for k in ("total", "new", "seen", "resolved")},
            }
            for r in changes.iter_rows(named=True)
        ],
        "entities": entities,
        "merchants": merchants,
        "glossary": [
            (s, label(SEVERITY_LABELS, s, lang), SEVERITY_GLOSSARY[s][0 if lang == "en" else 1])
            for s in SEVERITY_ORDER
        ],
    }


def _first_upper(text_: str) -> str:
    return text_[:1].upper() + text_[1:]


def _in_sentence(title: str) -> str:
    """An English title as it reads inside a sentence: 'Default PINs' -> 'default PINs'."""
    return _PIN_WORD.sub(lambda m: m.group(0).upper(), title.lower())


def _key_points(
    data: ReportData,
    lang: Language,
    *,
    merchants: list[dict[str, Any]],
    new: int,
    resolved: int,
    hygiene: PinHygiene,
    money: MoneyAtRisk,
) -> list[str]:
    """The few sentences a manager reads first."""
    findings = data.findings
    separator = ", " if lang == "en" else "、"
    points = []
    for severity in ("critical", "high"):
        rows = findings.filter(pl.col("severity") == severity)
        if rows.height:
            by_rule = (
                rows.group_by("rule").len().sort(["len", "rule"], descending=[True, False]).head(4)
            )
            rules = separator.join(
                f"{n:,} {_in_sentence(label(RULES, r, lang))}"
                if lang == "en"
                else f"{label(RULES, r, lang)} {n:,} 项"
                for r, n in by_rule.iter_rows()
            )
            if by_rule.height < rows.select(pl.col("rule").n_unique()).item():
                rules += " and others" if lang == "en" else "等"
            points.append(
                text(
                    "point_severity",
                    lang,
                    count=f"{rows.height:,}",
                    findings=english_count(
                        rows.height, f"{severity} finding", f"{severity} findings"
                    ),
                    severity=label(SEVERITY_LABELS, severity, lang),
                    rules=rules,
                )
            )
    if not points:
        points.append(text("point_none", lang))
    if money.refunds:
        top = money.by_rule.row(0, named=True)
        points.append(
            text(
                "point_money",
                lang,
                refunds=f"{money.refunds:,}",
                amount=money_text(money.total_fen, lang),
                rule=_in_sentence(label(RULES, top["rule"], lang))
                if lang == "en"
                else label(RULES, top["rule"], lang),
                rule_amount=money_text(top["amount_fen"], lang),
            )
        )
    points.append(
        text(
            "point_pins",
            lang,
            end=_day(data.run.data_to),
            weak=f"{hygiene.weak_operators:,}",
            operators=f"{hygiene.operators_in_scope:,}",
            share=_share_of(hygiene.weak_operators, hygiene.operators_in_scope),
            default=f"{hygiene.default_operators:,}",
            shared=f"{hygiene.shared_operators:,}",
        )
    )
    if merchants:
        top = merchants[0]
        points.append(
            text(
                "point_merchant",
                lang,
                merchant=top["merchant"],
                count=f"{top['count']:,}",
                critical_high=f"{top['critical_high']:,}",
            )
        )
    if data.run.previous_run_id is None:
        points.append(text("point_first", lang))
    else:
        points.append(
            text(
                "point_new",
                lang,
                new=f"{new:,}",
                previous=data.run.previous_run_id,
                resolved=f"{resolved:,}",
            )
        )
    return points


def _threshold_rows(method: Any, lang: Language) -> list[dict[str, str]]:
    rows = []
    for threshold in method.thresholds:
        name = label(PARAMETERS, threshold.name, lang)
        rows.append(
            {
                "key": threshold.name,
                "name": name,
                "value": _value(threshold.value, lang),
                "origin": threshold.origin,
            }
        )
    return rows


def _families(
    data: ReportData, shown: pl.DataFrame, lang: Language, first_number: int
) -> list[dict[str, Any]]:
    severity_labels = _severity_labels(lang)
    sections = []
    for offset, family in enumerate(FAMILY_ORDER):
        rows = shown.filter(pl.col("family") == family)
        methods = [m for m in data.methods.values() if m.family == family]
        rule_counts = dict(rows.group_by("rule").len().iter_rows())
        rule_order = [m.name for m in methods] + sorted(
            set(rule_counts) - {m.name for m in methods}
        )
        chart = None
        if rows.height:
            counted = (
                rows.group_by("rule", "severity")
                .len("count")
                .with_columns(
                    pl.col("rule")
                    .replace_strict(
                        {r: label(RULES, r, lang) for r in rule_order}, default=pl.col("rule")
                    )
                    .alias("rule_label")
                )
            )
            present = [label(RULES, r, lang) for r in rule_order if r in rule_counts]
            chart = Markup(
                charts.chart_svg(
                    charts.severity_bars(
                        counted,
                        category="rule_label",
                        category_order=present,
                        severity_labels=severity_labels,
                        category_title="",
                        count_title=text("findings", lang),
                        severity_title=text("severity", lang),
                    )
                )
            )
        top = rows.head(TOP_FINDINGS)
        leakage = fee_leakage(rows)
        critical_high = rows.filter(pl.col("severity_rank") >= SEVERITY_RANK["high"]).height
        sections.append(
            {
                "key": family,
                "number": first_number + offset,
                "title": label(FAMILIES, family, lang),
                "intro": FAMILY_INTROS[family][0 if lang == "en" else 1],
                "count": rows.height,
                "counts": text(
                    "family_intro",
                    lang,
                    count=f"{rows.height:,}",
                    findings=english_count(rows.height, "finding", "findings"),
                    rules=english_count(len(rule_counts), "rule", "rules")
                    if lang == "en"
                    else len(rule_counts),
                    critical_high=f"{critical_high:,}",
                    new=f"{int(rows.get_column('is_new').sum()):,}",
                ),
                "chart": chart,
                "leakage": text(
                    "fee_leakage",
                    lang,
                    total=money_text(leakage.total_fen, lang),
                    findings=f"{leakage.findings:,}",
                    not_collected=money_text(leakage.not_collected_fen, lang),
                    over_charged=money_text(leakage.over_charged_fen, lang),
                )
                if leakage.findings
                else None,
                "top_note": text(
                    "top_findings_note", lang, shown=top.height, count=f"{rows.height:,}"
                ),
                "top": _finding_rows(top, lang, evidence=True),
                "methods": [
                    {
                        "name": m.name,
                        "title": label(RULES, m.name, lang),
                        "description": m.description
                        if lang == "en"
                        else RULE_DESCRIPTIONS_ZH.get(m.name, m.description),
                        "enabled": m.enabled,
                        "count": text("rule_findings_one", lang)
                        if rule_counts.get(m.name, 0) == 1
                        else text("rule_findings", lang, count=f"{rule_counts.get(m.name, 0):,}"),
                        "thresholds": _threshold_rows(m, lang),
                    }
                    for m in methods
                ],
            }
        )
    return sections


def _pin_section(
    hygiene: PinHygiene, lang: Language, pseudonyms: Pseudonyms, *, end: datetime | None
) -> dict[str, Any]:
    population = max(hygiene.operators_in_scope, 1)

    def share(n: int) -> str:
        return _share_of(n, hygiene.operators_in_scope)

    headline = [
        ("weak_operators", hygiene.weak_operators),
        ("default_operators", hygiene.default_operators),
        ("stale_operators", hygiene.stale_operators),
        ("shared_operators", hygiene.shared_operators),
        ("reused_operators", hygiene.reused_operators),
    ]
    headline_frame = pl.DataFrame(
        {
            "what": [text(k, lang) for k, _ in headline],
            "operators": [n for _, n in headline],
            "share": [n / population for _, n in headline],
        }
    )
    chart = charts.count_bars(
        headline_frame,
        category="what",
        value="operators",
        share="share",
        category_title="",
        value_title=text("operators", lang),
    )
    weakness = [
        {
            "class": _first_upper(label(WEAKNESS_CLASSES, r["weakness_class"], lang)),
            "operators": r["operators"],
            "administrators": r["administrators"],
            "share": share(r["operators"]),
        }
        for r in hygiene.by_weakness.iter_rows(named=True)
    ]
    defaults = [
        {
            "operator": pseudonyms.operator(r["operator_id"]),
            "terminal": r["terminal_id"] or "—",
            "merchant": _merchant(r["merchant_id"], r["merchant_name"]),
            "set_at": r["set_at"] or "—",
            "held_days": f"{r['held_days']:,}" if r["held_days"] is not None else "—",
            "held_days_value": r["held_days"] if r["held_days"] is not None else -1,
        }
        for r in hygiene.default_pins.head(PIN_LIST_LIMIT).iter_rows(named=True)
    ]
    groups = [
        {
            "merchant": _merchant(r["merchant_id"], r["merchant_name"]),
            "members": ", ".join(pseudonyms.operator(m) for m in r["members"]),
            "size": r["size"],
            "since": r["shared_from"] or "—",
        }
        for r in hygiene.groups.head(PIN_LIST_LIMIT).iter_rows(named=True)
    ]
    sheet = label(FAMILIES, "pins", lang)
    return {
        "definition": text("pin_definition", lang, end=_day(end)),
        "population": f"{hygiene.operators_in_scope:,}",
        "population_share": share(hygiene.operators_in_scope),
        "headline": [(text(k, lang), f"{n:,}", share(n)) for k, n in headline]
        + [(text("shared_groups", lang), f"{hygiene.shared_groups:,}", "")],
        "chart": Markup(charts.chart_svg(chart)),
        "weakness": weakness,
        "defaults": defaults,
        "stale": [
            (label(AGE_BUCKETS, r["bucket"], lang), r["operators"])
            for r in hygiene.stale_by_age.iter_rows(named=True)
        ],
        "groups": groups,
        "defaults_note": text(
            "list_capped",
            lang,
            shown=len(defaults),
            count=f"{hygiene.default_pins.height:,}",
            sheet=sheet,
        )
        if hygiene.default_pins.height > len(defaults)
        else "",
        "groups_note": text(
            "list_capped", lang, shown=len(groups), count=f"{hygiene.groups.height:,}", sheet=sheet
        )
        if hygiene.groups.height > len(groups)
        else "",
    }


# -- the analysts' review ------------------------------------------------------------------------

_CASE_OPERATOR: Final = "case-operator-"


def _entity(entity_type: str, entity_id: str, pseudonyms: Pseudonyms) -> str:
    return pseudonyms.operator(entity_id) if entity_type == "operator" else entity_id


def _case(case_id: str, pseudonyms: Pseudonyms) -> str:
    """A case id as shown: an operator's case names the operator's pseudonym when masking."""
    if pseudonyms.enabled and case_id.startswith(_CASE_OPERATOR):
        return _CASE_OPERATOR + pseudonyms.operator(case_id.removeprefix(_CASE_OPERATOR))
    return case_id


def _analyst_text(value: str | None, lang: Language, pseudonyms: Pseudonyms) -> str:
    """A note or a reason an analyst wrote, as shown: withheld when the report masks
    operators (it may name one), else its text (controls dropped as the page prints it)."""
    if not value:
        return ""
    if pseudonyms.enabled:
        return text("withheld", lang)
    return value


def _shortened(value: str, limit: int = NOTE_SHOWN_CHARACTERS) -> str:
    """The first words of a long note, cut at a space near ``limit`` and marked."""
    flat = " ".join(value.split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit * 0.6 else cut).rstrip(" ,.;:") + " …"


def _review_section(data: ReportData, lang: Language, pseudonyms: Pseudonyms) -> dict[str, Any]:
    """Decisions and open cases per family, ageing against the deadline, snoozes in force."""
    review = data.review
    findings = data.findings
    counts = review_counts(findings)
    columns = ("findings", "decided_true", "decided_false", "undecided", "open_cases", "snoozed")
    decisions = [
        {"family": label(FAMILIES, r["family"], lang), **{c: f"{r[c]:,}" for c in columns}}
        for r in counts.iter_rows(named=True)
    ]
    totals = {c: f"{int(counts.get_column(c).sum()):,}" for c in columns}
    # a case with findings in two families is one case
    totals["open_cases"] = (
        f"{findings.filter(pl.col('case_status') != 'closed').get_column('case_id').n_unique():,}"
    )
    undecided = undecided_ages(findings, as_of=review.as_of, deadline_days=review.deadline_days)
    ageing = ageing_counts(undecided)
    deadline = review.deadline_days
    oldest = [
        {
            "finding_id": r["finding_id"],
            "rule": label(RULES, r["rule"], lang),
            "family": label(FAMILIES, r["family"], lang),
            "entity": f"{label(ENTITY_TYPES, r['entity_type'], lang)} "
            f"{_entity(r['entity_type'], r['entity_id'], pseudonyms)}",
            "age": f"{int(r['age_days']):,}",
            "age_value": r["age_days"],
            "bucket": r["bucket"],
            "assignee": r["assignee"] or text("unassigned", lang),
            "severity": r["severity"],
            "severity_label": label(SEVERITY_LABELS, r["severity"], lang),
        }
        for r in undecided.head(OLDEST_LISTED).iter_rows(named=True)
    ]
    snoozes = [
        {
            "entity": f"{label(ENTITY_TYPES, r['entity_type'], lang)} "
            f"{_entity(r['entity_type'], r['entity_id'], pseudonyms)}",
            "rule": label(RULES, r["rule"], lang) if r["rule"] else text("every_rule", lang),
            "until": _stamp(r["until"]),
            "reason": _analyst_text(r["reason"], lang, pseudonyms),
            "analyst": r["analyst"],
        }
        for r in review.active_snoozes.iter_rows(named=True)
    ]
    return {
        "intro": text("review_intro", lang, as_of=_stamp(review.as_of)),
        "reviewed": review.trail.height > 0 or review.snoozes.height > 0,
        "checks": _trail_checks(data),
        "decisions": decisions,
        "decision_totals": totals,
        "ageing_note": text("review_ageing_note", lang, deadline=deadline),
        "ageing_headers": [
            text("ageing_within", lang, deadline=deadline),
            text("ageing_over_1x", lang),
            text("ageing_over_2x", lang),
        ],
        "ageing": [
            {
                "family": label(FAMILIES, r["family"], lang),
                "buckets": [f"{r[b]:,}" for b in AGEING_BUCKETS],
                "undecided": f"{r['undecided']:,}",
            }
            for r in ageing.iter_rows(named=True)
        ],
        "ageing_totals": {
            "buckets": [f"{int(ageing.get_column(b).sum()):,}" for b in AGEING_BUCKETS],
            "undecided": f"{undecided.height:,}",
        },
        "oldest": oldest,
        "oldest_note": text(
            "review_oldest_note",
            lang,
            shown=len(oldest),
            count=f"{undecided.height:,}",
            sheet=_sheet_name(text("sheet_awaiting", lang)),
        )
        if undecided.height > len(oldest)
        else "",
        "snoozes": snoozes,
    }


def _trail_checks(data: ReportData) -> dict[str, Any]:
    """The two chains' check lines, as ``posaudit review verify`` prints them."""
    checks = (data.review.trail_check, data.review.snooze_check)
    return {
        "lines": [check.line() for check in checks],
        "whole": all(check.whole for check in checks),
    }


def _trail_section(data: ReportData, lang: Language, pseudonyms: Pseudonyms) -> dict[str, Any]:
    """Appendix B: the latest reviews, newest first, and the chains' check."""
    trail = data.review.trail
    latest = trail.sort("review_id", descending=True).head(TRAIL_LISTED)
    sheet = _sheet_name(text("sheet_reviews", lang))
    rows = [
        {
            "review_id": r["review_id"],
            "reviewed_at": _stamp(r["reviewed_at"]),
            "analyst": r["analyst"],
            "target": r["finding_id"] or _case(r["case_id"] or "", pseudonyms),
            "through_case": _case(r["case_id"], pseudonyms)
            if r["finding_id"] and r["case_id"]
            else "",
            "status": label(REVIEW_STATUSES, r["status"], lang),
            "decision": label(DECISIONS, r["decision"], lang) if r["decision"] else "—",
            "assignee": r["assignee"] or "",
            "note": _shortened(_analyst_text(r["note"], lang, pseudonyms)),
            "digest": r["digest"][:DIGEST_SHOWN] + "…",
        }
        for r in latest.iter_rows(named=True)
    ]
    return {
        "checks": _trail_checks(data),
        "rows": rows,
        "note": (
            text("trail_latest", lang, shown=len(rows), count=f"{trail.height:,}", sheet=sheet)
            if trail.height > len(rows)
            else text("trail_all", lang, count=f"{trail.height:,}", sheet=sheet)
        )
        if rows
        else text("trail_empty", lang),
    }


def _sheet_name(name: str) -> str:
    """A worksheet's name: no character Excel refuses, at most 31 characters."""
    return _SHEET_NAME.sub(" ", name)[:31]


# -- rendering ---------------------------------------------------------------------------------


def _environment(lang: Language) -> Environment:
    env = Environment(
        loader=PackageLoader("posaudit.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_shown_value,
    )
    env.globals["t"] = lambda key, **values: text(key, lang, **values)
    env.filters["css_string"] = css_string
    return env


def _shown_value(value: Any) -> Any:
    """Every value the template prints: text from the data without control or bidirectional
    characters, right-to-left text isolated (:mod:`posaudit.untrusted`); markup as it is."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return shown_text(value)
    return value


def css_string(value: str) -> Markup:
    """A quoted CSS string (for @page margin boxes), safe inside a <style> element."""
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("<", "\\3c ").replace("\n", " ")
    )
    return Markup(f'"{escaped}"')


def render_html(
    context: dict[str, Any], *, lang: Language, medium: Literal["screen", "print"]
) -> str:
    """The report page; ``print`` is the PDF's variant (its appendix may be shortened)."""
    template = _environment(lang).get_template("report.html.j2")
    # Scripts are for the screen: WeasyPrint runs none, and the PDF's rows stay as laid out.
    tables = table_assets(lang) if medium == "screen" else None
    return template.render(**context, medium=medium, tables=tables, severity_rank=SEVERITY_RANK)


def _excel_frame(frame: pl.DataFrame, lang: Language) -> pl.DataFrame:
    """The findings as the workbook lists them, headers in the report's language."""
    columns = {
        "severity_shown": text("severity", lang),
        "rank_score": text("score", lang),  # an anomaly finding's anomaly score
        "rule_shown": text("rule", lang),
        "entity_type_shown": text("entity_type", lang),
        "entity_shown": text("entity_id", lang),
        "operator_shown": text("operator_label", lang),
        "terminal_id": text("terminal", lang),
        "merchant_id": text("merchant_id", lang),
        "merchant_name": text("merchant_name", lang),
        "window_start": text("window_start", lang),
        "window_end": text("window_end", lang),
        "sentence": text("finding", lang),
        "is_new_shown": text("is_new", lang),
        "first_run_id": text("first_run", lang),
        "finding_id": text("finding_id", lang),
        "evidence_shown": text("evidence", lang),
    }
    return frame.with_columns(
        pl.col("severity")
        .replace_strict({s: label(SEVERITY_LABELS, s, lang) for s in SEVERITIES})
        .alias("severity_shown"),
        pl.col("rule")
        .replace_strict({r: label(RULES, r, lang) for r in RULES}, default=pl.col("rule"))
        .alias("rule_shown"),
        pl.col("entity_type")
        .replace_strict(
            {e: label(ENTITY_TYPES, e, lang) for e in ENTITY_TYPES}, default=pl.col("entity_type")
        )
        .alias("entity_type_shown"),
        pl.when(pl.col("is_new"))
        .then(pl.lit(text("yes", lang)))
        .otherwise(pl.lit(text("no", lang)))
        .alias("is_new_shown"),
        pl.col("rank_score").round(SCORE_DECIMALS),
        # A sentence starts with a capital, as in the HTML and the PDF.
        (pl.col("sentence").str.slice(0, 1).str.to_uppercase() + pl.col("sentence").str.slice(1)),
    ).select([pl.col(c).alias(h) for c, h in columns.items()])


_SHEET_NAME: Final = re.compile(r"[\[\]:*?/\\]")
# Column widths of a family sheet in pixels, in the order of :func:`_excel_frame`'s columns.
_SHEET_WIDTHS_PX: Final = (70, 50, 190, 70, 110, 170, 80, 80, 190, 120, 120, 640, 70, 90, 150, 420)
# A score is a fraction in [0, 1]; four places tell apart what two round together.
SCORE_DECIMALS: Final = 4


def _findings_sheet(book: Any, name: str, frame: pl.DataFrame, formats: dict[str, Any]) -> None:
    """One family's findings: header frozen, a filter on every column, scores to 4 places.

    A worksheet filter rather than an Excel table: every spreadsheet program shows its
    buttons (LibreOffice ignores a table's own filter), and the sheet reads the same.
    """
    sheet = book.add_worksheet(name)
    for column, (header, width) in enumerate(zip(frame.columns, _SHEET_WIDTHS_PX, strict=True)):
        sheet.set_column_pixels(column, column, width)
        sheet.write_string(0, column, header, formats["header"])
        values = frame.get_column(header)
        if values.dtype == pl.Datetime:
            cell = formats["datetime"]
        elif values.dtype.is_float():
            cell = formats["score"]
        else:
            cell = formats["plain"]
        sheet.write_column(1, column, values.to_list(), cell)
    last_row, last_column = max(frame.height, 1), frame.width - 1
    sheet.autofilter(0, 0, last_row, last_column)
    sheet.freeze_panes(1, 0)
    if frame.height:
        sheet.conditional_format(
            1,
            0,
            frame.height,
            last_column,
            {"type": "formula", "criteria": "=MOD(ROW(),2)=0", "format": formats["band"]},
        )


def write_workbook(
    path: Path,
    shown: pl.DataFrame,
    data: ReportData,
    summary: dict[str, Any],
    lang: Language,
    *,
    pseudonyms: Pseudonyms | None = None,
    classic_sheets: Sequence[tuple[str, pl.DataFrame]] = (),
) -> dict[str, int]:
    """The workbook: a summary sheet, one sheet per family, a sheet per classic test, and the
    review's sheets (the findings awaiting a decision, every review, every snooze); returns
    rows per sheet.

    The findings in ``shown`` are already in the report's words and masked as asked.
    """
    pseudonyms = pseudonyms or Pseudonyms(key=b"", enabled=False)
    import xlsxwriter

    rows: dict[str, int] = {}
    # Text stays text: a name such as "=HYPERLINK(...)" must not become a formula.
    options = {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False}
    with xlsxwriter.Workbook(path, options) as book:
        title = book.add_format({"bold": True, "font_size": 14, "font_name": charts.FONT})
        bold = book.add_format({"bold": True, "font_name": charts.FONT})
        plain = book.add_format({"font_name": charts.FONT})
        header = {
            "bold": True,
            "font_name": charts.FONT,
            "bg_color": "#1f4e79",
            "font_color": "#ffffff",
        }
        findings_formats = {
            "header": book.add_format(header),
            "plain": plain,
            "score": book.add_format({"font_name": charts.FONT, "num_format": "0.0000"}),
            "datetime": book.add_format(
                {"font_name": charts.FONT, "num_format": "yyyy-mm-dd hh:mm"}
            ),
            "band": book.add_format({"bg_color": "#f3f5f7"}),
        }
        sheet_summary = _SHEET_NAME.sub(" ", text("sheet_summary", lang))[:31]
        sheet = book.add_worksheet(sheet_summary)
        sheet.set_column(0, 0, 34)
        sheet.set_column(1, 8, 16)
        sheet.write(0, 0, text("title", lang), title)
        sheet.write(1, 0, text("subtitle", lang, run_id=data.run.run_id), plain)
        line = 3
        for key, value in summary["scope"]["rows"]:
            sheet.write(line, 0, key, bold)
            sheet.write(line, 1, value, plain)
            line += 1
        sheet.write(line, 0, text("policy_hash", lang), bold)
        sheet.write(line, 1, summary["scope"]["policy_hash"], plain)
        line += 2
        sheet.write(line, 0, text("by_family_severity", lang), bold)
        line += 1
        counts = pl.DataFrame(
            [
                {
                    text("family", lang): r["family"],
                    **{
                        h: c
                        for (_, h), c in zip(
                            summary["summary"]["severity_headers"], r["counts"], strict=True
                        )
                    },
                    text("total", lang): r["total"],
                }
                for r in summary["summary"]["table"]
            ]
            + [
                {
                    text("family", lang): text("total", lang),
                    **{
                        h: c
                        for (_, h), c in zip(
                            summary["summary"]["severity_headers"],
                            summary["summary"]["totals"],
                            strict=True,
                        )
                    },
                    text("total", lang): summary["summary"]["grand_total"],
                }
            ]
        )
        counts.write_excel(
            book,
            sheet,
            position=(line, 0),
            header_format=header,
            autofilter=False,
            table_style="Table Style Light 9",
        )
        line += counts.height + 1
        sheet.write(line, 0, summary["summary"]["left_out"], plain)
        line += 2
        sheet.write(line, 0, text("whats_new", lang), bold)
        line += 1
        changes = pl.DataFrame(
            [
                {
                    text("family", lang): r["family"],
                    text("total", lang): r["total"],
                    text("new", lang): r["new"],
                    text("seen", lang): r["seen"],
                    text("resolved", lang): r["resolved"],
                }
                for r in summary["summary"]["changes"]
            ]
        )
        changes.write_excel(
            book,
            sheet,
            position=(line, 0),
            header_format=header,
            autofilter=False,
            table_style="Table Style Light 9",
        )
        line += changes.height + 3
        if summary["summary"]["entities"]:
            sheet.write(line, 0, text("top_entities", lang), bold)
            line += 1
            entities = pl.DataFrame(
                [
                    {
                        text("entity", lang): e["entity"],
                        text("entity_type", lang): e["type"],
                        text("merchant", lang): e["merchant"],
                        text("findings", lang): e["count"],
                        text("worst", lang): e["worst_label"],
                        text("families", lang): e["families"],
                    }
                    for e in summary["summary"]["entities"]
                ]
            )
            entities.write_excel(
                book,
                sheet,
                position=(line, 0),
                header_format=header,
                autofilter=False,
                table_style="Table Style Light 9",
            )
        rows[sheet_summary] = line
        ingested = summary["scope"]["ingested"]
        if ingested:
            name = _SHEET_NAME.sub(" ", text("ingested_files", lang))[:31]
            files = _ingested_frame(ingested, lang)
            files.write_excel(
                book,
                name,
                header_format=header,
                autofit=True,
                table_style="Table Style Light 9",
            )
            rows[name] = files.height
        for family in FAMILY_ORDER:
            name = _SHEET_NAME.sub(" ", label(FAMILIES, family, lang))[:31]
            frame = _excel_frame(shown.filter(pl.col("family") == family), lang)
            _findings_sheet(book, name, frame, findings_formats)
            rows[name] = frame.height
        for title, frame in classic_sheets:
            name = _sheet_name(title)
            plain = frame.with_columns(
                pl.col(c).cast(pl.String)
                for c, dtype in frame.schema.items()
                if isinstance(dtype, pl.Categorical | pl.Enum)
            )
            plain.write_excel(
                book,
                name,
                header_format=header,
                autofit=True,
                table_style="Table Style Light 9",
                dtype_formats={pl.Datetime: "yyyy-mm-dd hh:mm:ss", pl.Date: "yyyy-mm-dd"},
            )
            rows[name] = plain.height
        for key, frame in (
            ("sheet_awaiting", _awaiting_frame(data, lang, pseudonyms)),
            ("sheet_reviews", _trail_frame(data.review.trail, lang, pseudonyms)),
            ("sheet_snoozes", _snoozes_frame(data.review.snoozes, lang, pseudonyms)),
        ):
            name = _sheet_name(text(key, lang))
            frame.write_excel(
                book,
                name,
                header_format=header,
                autofit=True,
                table_style="Table Style Light 9",
                dtype_formats={pl.Datetime: "yyyy-mm-dd hh:mm:ss"},
            )
            rows[name] = frame.height
    return rows


def _readable(frame: pl.DataFrame) -> pl.DataFrame:
    """Every text cell without control or bidirectional characters (analysts' text included)."""
    return frame.with_columns(
        pl.col(name).map_batches(readable_text, return_dtype=pl.String)
        for name, dtype in frame.schema.items()
        if dtype == pl.String
    )


def _masked_cases(column: str, pseudonyms: Pseudonyms) -> pl.Expr:
    return pl.col(column).map_elements(
        lambda case_id: _case(case_id, pseudonyms), return_dtype=pl.String, skip_nulls=True
    )


def _analyst_texts(column: str, lang: Language, pseudonyms: Pseudonyms) -> pl.Expr:
    if not pseudonyms.enabled:
        return pl.col(column)
    return pl.when(pl.col(column).is_not_null()).then(pl.lit(text("withheld", lang)))


def _entities(pseudonyms: Pseudonyms) -> pl.Expr:
    if not pseudonyms.enabled:
        return pl.col("entity_id")
    return pl.struct("entity_type", "entity_id").map_elements(
        lambda e: _entity(e["entity_type"], e["entity_id"], pseudonyms), return_dtype=pl.String
    )


def _trail_frame(trail: pl.DataFrame, lang: Language, pseudonyms: Pseudonyms) -> pl.DataFrame:
    """Every review, oldest first, every column, headers in the report's language."""
    # the trail's own columns, the case shown under its (masked) name
    columns = tuple("case" if c == "case_id" else c for c in TRAIL_COLUMNS)
    return _readable(
        trail.with_columns(
            _masked_cases("case_id", pseudonyms).alias("case"),
            pl.col("status").replace_strict(
                {k: label(REVIEW_STATUSES, k, lang) for k in REVIEW_STATUSES},
                default=pl.col("status"),
            ),
            pl.col("decision").replace_strict(
                {k: label(DECISIONS, k, lang) for k in DECISIONS}, default=pl.col("decision")
            ),
            _analyst_texts("note", lang, pseudonyms).alias("note"),
        ).select([pl.col(c).alias(text(c, lang)) for c in columns])
    )


def _snoozes_frame(snoozes: pl.DataFrame, lang: Language, pseudonyms: Pseudonyms) -> pl.DataFrame:
    """Every snooze recorded (a lift is a snooze ending when it was made), oldest first."""
    columns = (
        "snooze_id",
        "created_at",
        "analyst",
        "entity_type",
        "entity",
        "rule",
        "until",
        "reason",
        "previous_digest",
        "digest",
    )
    return _readable(
        snoozes.with_columns(
            pl.col("entity_type").replace_strict(
                {k: label(ENTITY_TYPES, k, lang) for k in ENTITY_TYPES},
                default=pl.col("entity_type"),
            ),
            _entities(pseudonyms).alias("entity"),
            pl.col("rule")
            .replace_strict({r: label(RULES, r, lang) for r in RULES}, default=pl.col("rule"))
            .fill_null(text("every_rule", lang)),
            _analyst_texts("reason", lang, pseudonyms).alias("reason"),
        ).select([pl.col(c).alias(text(c, lang)) for c in columns])
    )


def _awaiting_frame(data: ReportData, lang: Language, pseudonyms: Pseudonyms) -> pl.DataFrame:
    """Every finding of the run without a decision, oldest first, with its age in days."""
    review = data.review
    undecided = undecided_ages(
        data.findings, as_of=review.as_of, deadline_days=review.deadline_days
    )
    buckets = {
        "within": text("ageing_within", lang, deadline=review.deadline_days),
        "over_1x": text("ageing_over_1x", lang),
        "over_2x": text("ageing_over_2x", lang),
    }
    return _readable(
        undecided.select(
            pl.col("finding_id").alias(text("finding_id", lang)),
            pl.col("severity")
            .replace_strict({s: label(SEVERITY_LABELS, s, lang) for s in SEVERITIES})
            .alias(text("severity", lang)),
            pl.col("rule")
            .replace_strict({r: label(RULES, r, lang) for r in RULES}, default=pl.col("rule"))
            .alias(text("rule", lang)),
            pl.col("entity_type")
            .replace_strict(
                {e: label(ENTITY_TYPES, e, lang) for e in ENTITY_TYPES},
                default=pl.col("entity_type"),
            )
            .alias(text("entity_type", lang)),
            _entities(pseudonyms).alias(text("entity_id", lang)),
            pl.col("first_run_id").alias(text("first_run", lang)),
            pl.col("age_days").round(1).alias(text("age_days", lang)),
            pl.col("bucket").replace_strict(buckets).alias(text("ageing_bucket", lang)),
            pl.col("review_status")
            .replace_strict(
                {k: label(REVIEW_STATUSES, k, lang) for k in REVIEW_STATUSES},
                default=pl.col("review_status"),
            )
            .alias(text("status", lang)),
            pl.col("assignee").alias(text("assignee", lang)),
        )
    )


def _ingested_frame(ingested: dict[str, Any], lang: Language) -> pl.DataFrame:
    """The files of the provenance section as a sheet: one row a file, the total last."""
    columns = (
        ("name", "file"),
        ("fingerprint", "fingerprint"),
        ("table", "target_table"),
        ("rows_read", "file_rows_read"),
        ("rows_loaded", "file_rows_loaded"),
        ("rows_duplicate", "file_rows_duplicate"),
        ("rows_quarantined", "file_rows_quarantined"),
        ("reasons", "quarantine_reasons"),
    )
    total = {
        "name": text("ingested_total", lang),
        "fingerprint": "",
        "table": "",
        **ingested["totals"],
    }
    return pl.DataFrame(
        [
            {
                text(word, lang): int(row[key].replace(",", ""))
                if key.startswith("rows_")
                else row[key]
                for key, word in columns
            }
            for row in [*ingested["files"], total]
        ]
    )


def export_frame(shown: pl.DataFrame, lang: Language) -> pl.DataFrame:
    """The findings for CSV and Parquet: machine column names, values as the report shows them."""
    return shown.select(
        "finding_id",
        "run_id",
        "first_run_id",
        "is_new",
        "rule",
        pl.col("rule")
        .replace_strict({r: label(RULES, r, lang) for r in RULES}, default=pl.col("rule"))
        .alias("rule_title"),
        "family",
        "severity",
        "score",
        "entity_type",
        pl.col("entity_shown").alias("entity_id"),
        pl.col("operator_shown").alias("operator"),
        "terminal_id",
        "merchant_id",
        "merchant_name",
        "window_start",
        "window_end",
        pl.col("sentence").alias("summary"),
        pl.col("evidence_shown").alias("evidence"),
        pl.col("status").replace_strict(
            {s: label(STATUSES, s, lang) for s in STATUSES}, default=pl.col("status")
        ),
    )


# -- the whole report --------------------------------------------------------------------------


def report_stem(run_id: str, lang: Language, *, masked: bool) -> str:
    return f"posaudit-report-{run_id}-{lang}" + ("-masked" if masked else "")


def build_report(
    db: Path | str,
    out_dir: Path | str,
    *,
    run_id: str | None = None,
    formats: Sequence[Format] = FORMATS,
    lang: Language = "en",
    mask_operators: bool = False,
    generated_at: datetime | None = None,
    pdf_appendix_limit: int = PDF_APPENDIX_LIMIT,
    classics: bool = True,
) -> ReportResult:
    """Write a run's report into ``out_dir`` in each of ``formats``; ``classics``: with the
    section and sheets of the auditor's classics.

    Raises ReportError (or StoreError) with one line for the user.
    """
    if lang not in ("en", "zh"):
        msg = f"unknown report language {lang!r}: choose en or zh"
        raise ReportError(msg)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        msg = f"unknown report format {', '.join(unknown)}: choose from {','.join(FORMATS)}"
        raise ReportError(msg)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        msg = f"--out {out} is a file, not a folder"
        raise ReportError(msg)
    # Without its font WeasyPrint would draw boxes for Chinese and say nothing: refuse first.
    missing = missing_font() if "pdf" in formats else None
    if missing:
        raise ReportError(missing)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    store = Store.open(db, read_only=True)
    try:
        data = load_report_data(store, run_id)
    finally:
        store.close()
    seconds["read"] = time.perf_counter() - started
    # the classics read the whole store: beside the sentences and sections
    classics_job = report_classics.start(db) if classics else None

    mark = time.perf_counter()
    pseudonyms = Pseudonyms.for_deployment(pin_digester(), enabled=mask_operators)
    shown, fallbacks = localized_findings(data.findings, lang=lang, pseudonyms=pseudonyms)
    seconds["sentences"] = time.perf_counter() - mark

    mark = time.perf_counter()
    now = generated_at or datetime.now().replace(microsecond=0)
    scope = _scope(data, lang, pseudonyms, now)
    pins = pin_hygiene(
        data.findings,
        operators_in_scope=data.population["operators_at_end"],
        data_to=data.run.data_to,
    )
    # The headline counts what is left to look at: not what an analyst dismissed or snoozed.
    headline = replace(data, findings=headline_findings(data.findings))
    money = money_at_risk(headline.findings, data.refund_amounts)
    summary = _summary(headline, shown, lang, pseudonyms, hygiene=pins, money=money)
    left_out = set_aside_counts(data.findings)
    summary["left_out"] = (
        text("headline_left_out", lang, **{k: f"{v:,}" for k, v in left_out.items()})
        if any(left_out.values())
        else text("headline_left_out_none", lang)
    )
    families = _families(data, shown, lang, first_number=3)
    hygiene = _pin_section(pins, lang, pseudonyms, end=data.run.data_to)
    review = _review_section(data, lang, pseudonyms)
    trail = _trail_section(data, lang, pseudonyms)
    seconds["sections"] = time.perf_counter() - mark
    mark = time.perf_counter()
    classic_figures = classics_job.result() if classics_job else None
    classics_section = (
        report_classics.section(classic_figures, lang, number=4 + len(families))
        if classic_figures
        else None
    )
    seconds["classics"] = time.perf_counter() - mark

    out.mkdir(parents=True, exist_ok=True)
    stem = report_stem(data.run.run_id, lang, masked=mask_operators)
    paths: dict[str, Path] = {}
    context: dict[str, Any] = {
        "lang": lang,
        "html_lang": "zh-CN" if lang == "zh" else "en",
        "font": charts.FONT,
        "run": data.run,
        "masked": mask_operators,
        "data_window": f"{_stamp(data.run.data_from)} – {_stamp(data.run.data_to)}",
        "generated_at": now.strftime("%Y-%m-%d %H:%M"),
        "population": text(
            "population_value", lang, **{k: f"{v:,}" for k, v in data.population.items()}
        ),
        "scope": scope,
        "summary": summary,
        "families": families,
        "pins": hygiene,
        "pin_number": 3 + len(families),
        "classics": classics_section,
        "review": review,
        "review_number": (5 if classics_section else 4) + len(families),
        "trail": trail,
        "appendix_total": data.findings.height,
        "severity_colors": SEVERITY_COLORS,
    }
    pdf_job: Future[None] | None = None
    pool: ProcessPoolExecutor | None = None
    finished: dict[str, float] = {}
    pdf_started = time.perf_counter()
    # Every file is written under a temporary name and renamed when all are complete: a
    # failed or killed report leaves no file that looks whole (posaudit.atomic).
    with contextlib.ExitStack() as files:

        def part(kind: str, name: str) -> Path:
            paths[kind] = out / name
            return files.enter_context(written_file(paths[kind]))

        try:
            if "pdf" in formats:
                context_pdf = context | {
                    "appendix": _finding_rows(shown.head(pdf_appendix_limit), lang, evidence=False),
                    "appendix_capped": shown.height > pdf_appendix_limit,
                }
                html_print = render_html(context_pdf, lang=lang, medium="print")
                pdf_part = part("pdf", f"{stem}.pdf")
                if len(formats) > 1:
                    # Layout is the slowest step and single-threaded: it runs beside the other
                    # formats, in a worker that dies with this process.
                    pool = ProcessPoolExecutor(
                        max_workers=1,
                        mp_context=multiprocessing.get_context("spawn"),
                        initializer=die_with_parent,
                        initargs=(os.getpid(),),
                    )
                    pdf_job = pool.submit(write_pdf, html_print, pdf_part)
                    pdf_job.add_done_callback(
                        lambda _: finished.__setitem__("pdf", time.perf_counter())
                    )
                else:
                    write_pdf(html_print, pdf_part)
                    finished["pdf"] = time.perf_counter()
            if "html" in formats:
                mark = time.perf_counter()
                context_html = context | {
                    "appendix": _finding_rows(shown, lang, evidence=False),
                    "appendix_capped": False,
                }
                part("html", f"{stem}.html").write_text(
                    render_html(context_html, lang=lang, medium="screen"), encoding="utf-8"
                )
                seconds["html"] = time.perf_counter() - mark
            if "xlsx" in formats:
                mark = time.perf_counter()
                workbook = part("xlsx", f"{stem}.xlsx")
                write_workbook(
                    workbook,
                    shown,
                    data,
                    {"scope": scope, "summary": summary},
                    lang,
                    pseudonyms=pseudonyms,
                    classic_sheets=report_classics.sheets(classic_figures, lang)
                    if classic_figures
                    else (),
                )
                seconds["xlsx"] = time.perf_counter() - mark
            exported = export_frame(shown, lang) if {"csv", "parquet"} & set(formats) else None
            if exported is not None and "csv" in formats:
                mark = time.perf_counter()
                # a name from the data is never a formula to the spreadsheet that opens it
                csv_safe(exported).write_csv(
                    part("csv", f"{stem.replace('report', 'findings')}.csv"), include_bom=True
                )
                seconds["csv"] = time.perf_counter() - mark
            if exported is not None and "parquet" in formats:
                mark = time.perf_counter()
                exported.write_parquet(
                    part("parquet", f"{stem.replace('report', 'findings')}.parquet")
                )
                seconds["parquet"] = time.perf_counter() - mark
            if pdf_job is not None:
                pdf_job.result()
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
    if "pdf" in formats:
        seconds["pdf"] = finished.get("pdf", time.perf_counter()) - pdf_started
    seconds["total"] = time.perf_counter() - started
    return ReportResult(data.run.run_id, paths, data.findings.height, fallbacks, seconds)


__all__ = [
    "FORMATS",
    "PDF_APPENDIX_LIMIT",
    "Format",
    "ReportError",
    "ReportResult",
    "build_report",
    "parse_formats",
]
