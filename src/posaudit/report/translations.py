# ruff: noqa: E501  (sentences and their Chinese counterparts read best whole, one per line)
"""Every word the report shows, in English and Chinese, and each finding's sentence.

A finding's sentence is declared once, next to its rule, in both languages
(:mod:`posaudit.detect.sentences`); the rule writes the English one into the finding's
``summary``. The report reads the facts back out of that summary with the same declaration
and writes the sentence in the report's language, operators masked when the report masks
them (:func:`finding_sentence`), so its English sentence is the stored summary itself. A
rule without a sentence, or a summary an earlier version of its rule wrote, falls back to the
English summary (masked when the report masks operators): :func:`finding_sentence` returns
``None`` then.

``tests/report/test_report_translations.py`` renders every finding of a sample run in both
languages, fails on any fallback, and checks that the English sentence is the summary.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from posaudit.detect import ledger, logins, pins, privileges, refunds, sales
from posaudit.detect.pins import ACTOR_WORDS, WEAKNESS_WORDS
from posaudit.detect.sentences import Language, OperatorLabel, Sentence
from posaudit.report.pseudonyms import OPERATOR_ID, Pseudonyms
from posaudit.score import merchants, operators

LANGUAGES: Final[tuple[Language, ...]] = ("en", "zh")

# -- words of the page -----------------------------------------------------------------------

UI: Final[dict[str, tuple[str, str]]] = {
    "title": ("POS terminal and operator audit", "POS 终端与操作员审计报告"),
    "subtitle": ("Audit report for run {run_id}", "运行 {run_id} 的审计报告"),
    "confidential": ("Confidential: for the audit team", "机密：仅限审计团队"),
    "confidential_masked": (
        "Operators pseudonymised: fit for distribution outside the audit team",
        "操作员已匿名化：可在审计团队以外分发",
    ),
    "contents": ("Contents", "目录"),
    "page": ("Page", "第"),
    "page_of": ("of", "页，共"),
    "page_end": ("", "页"),
    # scope
    "scope": ("Scope and provenance", "范围与来源"),
    "scope_intro": (
        "What this report covers and how it was produced: another auditor can reproduce every "
        "figure from the store, the run and the policy named here.",
        "本报告涵盖的范围及其生成方式：其他审计人员可凭此处列明的数据库、运行记录和审计策略复现每一个数字。",
    ),
    "store": ("Store", "数据库"),
    "run": ("Run", "运行"),
    "run_started": ("Run started", "运行开始"),
    "run_finished": ("Run finished", "运行结束"),
    "run_status": ("Run status", "运行状态"),
    "data_window": ("Data window", "数据时间范围"),
    "rows_read": ("Rows read", "读取行数"),
    "population": ("In scope", "审计对象"),
    "population_value": (
        "{merchants} merchants, {terminals} terminals, {operators} operators",
        "{merchants} 家商户，{terminals} 台终端，{operators} 名操作员",
    ),
    "policy_hash": ("Policy (SHA-256 of its settings)", "审计策略（其设置的 SHA-256 值）"),
    "policy_verified": ("matches the thresholds shown in this report", "与本报告所列阈值一致"),
    "policy_unverified": (
        "the stored policy text could not be matched to this hash: thresholds shown are the rules' defaults where the text is silent",
        "存储的策略文本与该哈希不符：文本未规定之处按规则默认值列出",
    ),
    "code_version": ("Code version (run / report)", "程序版本（运行 / 报告）"),
    "generated_at": ("Report generated at", "报告生成时间"),
    "previous_run": ("Previous run", "上一次运行"),
    "none": ("none (first run)", "无（首次运行）"),
    "masking": ("Operator names and numbers", "操作员姓名与编号"),
    "masking_on": ("replaced by stable pseudonyms (OP-…)", "已替换为固定化名（OP-…）"),
    "masking_off": ("shown", "如实显示"),
    "policy_changes": ("Thresholds changed from the built-in policy", "相对内置策略修改过的阈值"),
    "default": ("Default", "默认值"),
    "ingested_files": ("Files ingested", "导入的文件"),
    "ingested_intro": (
        "The store holds exported data loaded by posaudit ingest, not a simulation: these are its files, each known by the SHA-256 fingerprint of its bytes. Every row read was loaded, found already in the store (duplicate) or quarantined with a reason; quarantined rows are in no figure of this report. The store holds no ground truth, so the report measures no detection rate.",
        "数据库中的数据由 posaudit ingest 从导出文件载入，而非模拟生成：以下为其文件，每个文件以其内容的 SHA-256 指纹标识。读取的每一行或已载入，或已在库中（重复），或因某一原因被隔离；被隔离的行不计入本报告的任何数字。数据库中没有真实标签，因此本报告不衡量检出率。",
    ),
    "file": ("File", "文件"),
    "fingerprint": ("Fingerprint", "指纹"),
    "target_table": ("Table", "数据表"),
    "file_rows_read": ("Read", "读取"),
    "file_rows_loaded": ("Loaded", "载入"),
    "file_rows_duplicate": ("Duplicate", "重复"),
    "file_rows_quarantined": ("Quarantined", "隔离"),
    "quarantine_reasons": ("Quarantined because", "隔离原因"),
    "ingested_total": ("All files", "全部文件"),
    "pins_note": (
        "No PIN and no PIN digest appears in this report: weak PINs are named by their weakness class only.",
        "本报告不含任何密码或密码摘要：弱密码仅以其弱点类别表示。",
    ),
    # summary
    "summary": ("Executive summary", "执行摘要"),
    "total_findings": ("Findings", "发现总数"),
    "critical_high": ("Critical or high", "严重或高"),
    "new_findings": ("New since the previous run", "上次运行以来新增"),
    "resolved_findings": ("Resolved since the previous run", "上次运行以来已解决"),
    "cover_findings": (
        "{total} ({critical_high} critical or high)",
        "{total} 项（严重或高 {critical_high} 项）",
    ),
    "key_points": ("Key points", "要点"),
    "point_severity": (
        "{findings}: {rules}.",
        "严重程度为“{severity}”的发现 {count} 项：{rules}。",
    ),
    "point_none": ("No finding is critical or high.", "没有严重或高级别的发现。"),
    "point_pins": (
        "At the end of the data ({end}), {weak} of the {operators} operators active then ({share}) held a weak PIN, {default} still held the acquirer's default PIN and {shared} shared a PIN with a colleague.",
        "截至数据截止日（{end}），当时仍启用的 {operators} 名操作员中有 {weak} 名（{share}）使用弱密码，{default} 名仍在使用收单机构的默认密码，{shared} 名与同事共用密码。",
    ),
    "point_money": (
        "Refund findings name {refunds} refunds totalling {amount}, each counted once; the largest amount, {rule_amount}, is in {rule}.",
        "退款类发现共涉及 {refunds} 笔退款，合计 {amount}（每笔只计一次）；金额最多的一类是“{rule}”，共 {rule_amount}。",
    ),
    "money_at_risk": ("Money at risk", "涉险金额"),
    "money_title": ("Money at risk by rule", "按规则统计的涉险金额"),
    "money_definition": (
        "Money at risk is the amount of the approved refunds that refund findings name, each refund counted once however many findings name it. Each rule's row counts its refunds once; the rows add up to more than the total when a refund breaks several rules. Anomaly findings are leads, not breaches: the refunds of the operator-days they name are not counted.",
        "涉险金额指退款类发现所涉及的已批准退款的金额合计，同一笔退款无论被多少项发现提及都只计一次。每条规则一行，行内每笔退款计一次；一笔退款违反多条规则时，各行相加会大于合计。异常评分类发现只是线索而非违规，其所涉操作员日的退款不计入。",
    ),
    "money_none": ("No refund finding: no money at risk.", "没有退款类发现，涉险金额为零。"),
    "money_refunds": ("Refunds", "退款笔数"),
    "money_amount": ("Amount", "金额"),
    "money_total": ("Total, each refund once", "合计（每笔退款只计一次）"),
    "money_unlisted": (
        "Of the total, {amount} is from refunds a finding counts without listing them one by one; they cannot be matched against other findings.",
        "合计中有 {amount} 来自发现中未逐笔列出的退款，无法与其他发现去重。",
    ),
    "point_merchant": (
        "The merchant with the most findings is {merchant}: {count}, of which {critical_high} critical or high.",
        "发现最多的商户是 {merchant}：共 {count} 项，其中严重或高 {critical_high} 项。",
    ),
    "point_new": (
        "{new} findings are new since {previous}, and {resolved} of that run's findings are no longer found.",
        "与 {previous} 相比新增 {new} 项发现，该次运行的发现中有 {resolved} 项不再出现。",
    ),
    "point_first": (
        "This is the first run on this store: every finding is new.",
        "这是该数据库的首次运行：所有发现均为新增。",
    ),
    "by_family_severity": ("Findings by family and severity", "按类别和严重程度统计的发现"),
    "family": ("Family", "类别"),
    "total": ("Total", "合计"),
    "whats_new": ("What is new since the previous run", "上次运行以来的变化"),
    "whats_new_first": (
        "This is the store's first run: every finding is new.",
        "这是该数据库的首次运行：所有发现均为新增。",
    ),
    "whats_new_intro": (
        "Compared with {previous}: {new} new findings, {seen} seen before, {resolved} no longer found.",
        "与 {previous} 相比：新增 {new} 项，此前已发现 {seen} 项，{resolved} 项不再出现。",
    ),
    "new": ("New", "新增"),
    "seen": ("Seen before", "此前已发现"),
    "resolved": ("Resolved", "已解决"),
    "top_entities": ("Operators and terminals with the most findings", "发现最多的操作员和终端"),
    "top_entities_note": (
        "Refund findings count toward the operator who made the refund.",
        "退款类发现计入办理该笔退款的操作员。",
    ),
    "top_merchants": ("Merchants with the most findings", "发现最多的商户"),
    "entity": ("Entity", "对象"),
    "entity_type": ("Type", "类型"),
    "merchant": ("Merchant", "商户"),
    "findings": ("Findings", "发现"),
    "worst": ("Worst severity", "最高严重程度"),
    "families": ("Families", "类别"),
    "signoff": ("Review and sign-off", "审阅与签署"),
    "prepared_by": ("Prepared by", "编制人"),
    "reviewed_by": ("Reviewed and approved by", "审核批准人"),
    "date": ("Date", "日期"),
    "signature": ("Signature", "签名"),
    # family sections
    "family_intro": (
        "{findings} from {rules} ({critical_high} critical or high, {new} new).",
        "共 {count} 项发现，来自 {rules} 条规则（严重或高 {critical_high} 项，新增 {new} 项）。",
    ),
    "family_none": ("No findings in this family.", "该类别没有发现。"),
    "fee_leakage": (
        "Fee leakage: {total} net by the fee table over {findings} merchant-days with fees off "
        "the table ({not_collected} not collected, {over_charged} charged over the table).",
        "手续费漏损：按费率表重算，{findings} 个商户日的手续费与费率表不符，净少收 {total}"
        "（少收 {not_collected}，多收 {over_charged}）。",
    ),
    "by_rule_severity": ("Findings by rule and severity", "按规则和严重程度统计的发现"),
    "top_findings": ("Top findings", "最重要的发现"),
    "top_findings_note": (
        "The {shown} most severe of {count}: by severity, then score (highest first), then time. The workbook lists them all.",
        "依次按严重程度、评分（从高到低）和时间排序，列出 {count} 项中最靠前的 {shown} 项；Excel 工作簿列出全部发现。",
    ),
    "method": ("Method and thresholds", "方法与阈值"),
    "threshold": ("Threshold", "阈值"),
    "value": ("Value", "取值"),
    "origin": ("Origin (from the policy)", "依据（摘自审计策略）"),
    "no_thresholds": ("This rule has no thresholds.", "该规则没有可调阈值。"),
    "rule_disabled": ("switched off by the policy", "已被审计策略关闭"),
    "rule_findings": ("{count} findings", "{count} 项发现"),
    "rule_findings_one": ("1 finding", "1 项发现"),
    "severity": ("Severity", "严重程度"),
    "score": ("Score", "评分"),
    "score_note": (
        "Score: how strongly a finding holds, from 0 to 1; for an anomaly finding, its anomaly score.",
        "评分：发现的确定程度，取值 0 至 1；异常评分类发现取其异常分。",
    ),
    "rule": ("Rule", "规则"),
    "window": ("When", "时间"),
    "finding": ("Finding", "发现"),
    "evidence": ("Evidence", "证据"),
    "count": ("Count", "数量"),
    "day": ("Day", "日期"),
    # PIN hygiene
    "pin_hygiene": ("PIN hygiene", "密码安全状况"),
    "pin_intro": (
        "Operator PINs audited the way a password audit reads a directory: the terminal management "
        "system keeps only keyed digests, and weak candidates are digested under the same key and "
        "compared. No PIN is shown.",
        "参照口令审计的方式审查操作员密码：终端管理系统只保存带密钥的摘要，审计时以同一密钥计算弱密码候选的摘要并比对。"
        "本节不显示任何密码。",
    ),
    "pin_headline": ("At a glance", "概览"),
    "operators_in_scope": ("Operators active at the end of the data", "数据截止时仍启用的操作员"),
    "pin_definition": (
        "Every figure in this section counts the operators active at the end of the data ({end}) by the PIN each held then. A PIN changed before then is a finding in the Operator PINs section, not a figure here.",
        "本节所有数字均以数据截止时（{end}）仍启用的操作员为对象，按其当时使用的密码统计。此前已更换的密码列在“操作员密码”一节的发现中，不计入本节。",
    ),
    "weak_operators": ("Operators with a weak PIN", "使用弱密码的操作员"),
    "default_operators": ("Operators on the acquirer's default PIN", "仍使用默认密码的操作员"),
    "stale_operators": ("Operators with a stale PIN (over the age limit)", "密码超期未换的操作员"),
    "shared_groups": ("Shared-PIN groups", "共用同一密码的操作员组"),
    "shared_operators": ("Operators sharing a PIN", "共用密码的操作员"),
    "reused_operators": ("Operators who went back to an old PIN", "改回旧密码的操作员"),
    "share_of_operators": ("Share of operators", "占操作员比例"),
    "operators": ("Operators", "操作员"),
    "administrators": ("Of them, administrators", "其中管理员"),
    "by_weakness": ("Weak PINs by weakness class", "按弱点类别统计的弱密码"),
    "weakness_class": ("Weakness class", "弱点类别"),
    "default_pins_title": (
        "Operators on the default PIN, longest held first",
        "仍在使用默认密码的操作员（按使用时长从长到短）",
    ),
    "default_none": (
        "At the end of the data no operator held the acquirer's default PIN.",
        "数据截止时没有操作员使用收单机构的默认密码。",
    ),
    "stale_title": ("Stale PINs by age", "按密码使用时长统计的超期密码"),
    "age": ("PIN age", "密码使用时长"),
    "held_days": ("Days held", "使用天数"),
    "still_held": ("Still held at the end of the data", "数据截止时仍在使用"),
    "yes": ("yes", "是"),
    "no": ("no", "否"),
    "shared_title": (
        "Shared-PIN groups, largest first",
        "共用同一密码的操作员组（按人数从多到少）",
    ),
    "list_capped": (
        "The first {shown} of {count}; the workbook's sheet “{sheet}” lists them all.",
        "列出 {count} 项中的前 {shown} 项；Excel 工作簿的“{sheet}”工作表列出全部。",
    ),
    "shared_none": (
        "At the end of the data no two operators of a merchant shared a PIN.",
        "数据截止时，同一商户内没有操作员共用密码。",
    ),
    "group_members": ("Operators in the group", "组内操作员"),
    "group_size": ("Size", "人数"),
    "shared_since": ("Shared since", "开始共用"),
    "operator": ("Operator", "操作员"),
    "terminal": ("Terminal", "终端"),
    "set_at": ("PIN set on", "密码设置日期"),
    "operator_pins_chart": ("Operators by PIN weakness", "按密码弱点统计的操作员"),
    # appendix
    "appendix": ("Appendix: all findings", "附录：全部发现"),
    "appendix_intro": (
        "Every finding of the run, most severe first: by severity, then score (highest first), then time. The workbook and the CSV and Parquet files hold the same rows.",
        "本次运行的全部发现，依次按严重程度、评分（从高到低）和时间排列。Excel 工作簿以及 CSV、Parquet 文件包含相同的记录。",
    ),
    "appendix_capped": (
        "The {shown} most severe of {count} findings; all {count} are in the HTML report, the workbook and the CSV and Parquet files.",
        "列出 {count} 项发现中最重要的 {shown} 项；全部 {count} 项见 HTML 报告、Excel 工作簿以及 CSV、Parquet 文件。",
    ),
    "glossary": ("Severity levels", "严重程度说明"),
    "number": ("#", "序号"),
    # workbook
    "sheet_summary": ("Summary", "摘要"),
    "finding_id": ("Finding ID", "发现编号"),
    "first_run": ("First found in run", "首次发现的运行"),
    "is_new": ("New in this run", "本次新增"),
    "window_start": ("From", "开始时间"),
    "window_end": ("To", "结束时间"),
    "open_since": ("since {start}, still held", "自 {start} 起，至今仍在"),
    "merchant_id": ("Merchant ID", "商户编号"),
    "merchant_name": ("Merchant name", "商户名称"),
    "entity_id": ("Entity ID", "对象编号"),
    "operator_label": ("Operator", "操作员"),
    "status": ("Status", "状态"),
    # the analysts' review
    "review": ("Analysts' review", "分析员复核"),
    "review_intro": (
        "What the analysts decided about the findings of this run, read from the store's review trail when the report was made. Findings are aged and snoozes read as of the end of the run ({as_of} UTC).",
        "分析员对本次运行各项发现的复核结论，于生成报告时从数据库的复核记录读取。发现的等待时长和暂缓状态均以运行结束时（{as_of} UTC）为准。",
    ),
    "review_none": (
        "Nothing has been reviewed yet: no analyst has recorded a decision, a case review or a snooze in this store, so every finding is undecided.",
        "尚未进行任何复核：该数据库中没有分析员记录过结论、案件复核或暂缓，因此所有发现均未有结论。",
    ),
    "review_decisions": ("Decisions and open cases by family", "按类别统计的结论和未结案件"),
    "review_decisions_note": (
        "Decided true: confirmed fraud or a policy breach. Decided false: a false positive, or benign and explained. A finding's decision is its latest review's. A case is every finding of one entity (an operator, a terminal...); it is open until its own latest review closes it (never reviewed as a whole: while any of its findings is not closed), and counts in every family it has a finding in.",
        "结论为真：确认舞弊或违反政策。结论为假：误报，或属正常且已解释。发现的结论以其最新一条复核为准。案件是同一对象（操作员、终端等）的全部发现；在其自身最新一条复核结案之前均为未结（从未整体复核的案件：只要其中仍有未结的发现即为未结），并计入其发现所属的每个类别。",
    ),
    "decided_true": ("Decided true", "结论为真"),
    "decided_false": ("Decided false", "结论为假"),
    "undecided": ("Undecided", "尚无结论"),
    "open_cases": ("Open cases", "未结案件"),
    "snoozed": ("Snoozed", "已暂缓"),
    "review_ageing": ("Findings awaiting a decision, by age", "等待结论的发现（按等待时长）"),
    "review_ageing_note": (
        "The policy gives analysts {deadline} days to decide a finding ([review] deadline_days). A finding's age runs from the start of the run that first found it to the end of this run.",
        "审计策略规定分析员须在 {deadline} 天内对每项发现作出结论（[review] deadline_days）。发现的等待时长自首次发现它的运行开始时起算，至本次运行结束时止。",
    ),
    "ageing_within": (
        "Within the deadline ({deadline} days or less)",
        "期限内（{deadline} 天以内）",
    ),
    "ageing_over_1x": ("Overdue, up to twice the deadline", "超期，不超过两倍"),
    "ageing_over_2x": ("Overdue, more than twice the deadline", "超期两倍以上"),
    "ageing_none": ("Every finding of this run has a decision.", "本次运行的每项发现均已有结论。"),
    "review_oldest": ("The oldest findings awaiting a decision", "等待结论时间最长的发现"),
    "review_oldest_note": (
        "The {shown} oldest of {count}; the workbook's sheet “{sheet}” lists them all.",
        "列出 {count} 项中等待最久的 {shown} 项；Excel 工作簿的“{sheet}”工作表列出全部。",
    ),
    "age_days": ("Age (days)", "等待天数"),
    "ageing_bucket": ("Against the deadline", "对照期限"),
    "assignee": ("Assignee", "负责人"),
    "unassigned": ("nobody", "未分配"),
    "review_snoozes": ("Snoozes in force", "生效中的暂缓"),
    "review_snoozes_note": (
        "A snoozed finding is still listed in its family and the appendix; it counts in no headline figure until the snooze ends.",
        "被暂缓的发现仍列于其类别和附录中；在暂缓结束前不计入任何摘要数字。",
    ),
    "snoozes_none": ("No snooze is in force.", "没有生效中的暂缓。"),
    "every_rule": ("every rule", "全部规则"),
    "until": ("Until (UTC)", "截止时间（UTC）"),
    "reason": ("Reason", "原因"),
    "analyst": ("Analyst", "分析员"),
    "withheld": ("withheld: this report masks operators", "已隐去：本报告对操作员作匿名处理"),
    "headline_left_out": (
        "These figures leave out {snoozed} snoozed and {dismissed} dismissed by an analyst (closed as a false positive, or benign and explained); the family sections and the appendix list every finding.",
        "以上数字不含已暂缓的 {snoozed} 项发现和被分析员排除的 {dismissed} 项发现（以误报或正常且已解释结案）；各类别章节和附录列出全部发现。",
    ),
    "headline_left_out_none": (
        "No finding is snoozed or dismissed by an analyst: these figures count every finding.",
        "没有发现被暂缓或被分析员排除：以上数字包含全部发现。",
    ),
    # the review trail (appendix B)
    "trail": ("Appendix: the review trail", "附录：复核记录"),
    "trail_intro": (
        "Every review is a row of an append-only trail, chained by SHA-256 digests so that an edited, deleted or inserted row is found (docs/review.md). The check below was run when the report was made.",
        "每条复核都是只增不改的记录中的一行，并以 SHA-256 摘要逐行链接，任何被修改、删除或插入的行都能被发现（见 docs/review.md）。以下检查于生成报告时进行。",
    ),
    "trail_check": (
        "Chain check, as posaudit review verify prints it",
        "链式校验（posaudit review verify 的输出）",
    ),
    "trail_broken": (
        "The review trail is not whole: it was changed outside posaudit. Its decisions cannot be relied on until this is explained.",
        "复核记录不完整：曾在 posaudit 之外被改动。在查明原因之前，其中的结论不可作为依据。",
    ),
    "trail_latest": (
        "The latest {shown} of {count} reviews, newest first; the workbook's sheet “{sheet}” holds every review.",
        "按时间倒序列出 {count} 条复核中最新的 {shown} 条；Excel 工作簿的“{sheet}”工作表包含全部复核。",
    ),
    "trail_all": (
        "All {count} reviews, newest first; the workbook's sheet “{sheet}” holds them too.",
        "按时间倒序列出全部 {count} 条复核；Excel 工作簿的“{sheet}”工作表同样包含。",
    ),
    "trail_empty": ("No review has been recorded yet.", "尚未记录任何复核。"),
    "review_id": ("Review", "编号"),
    "reviewed_at": ("Time (UTC)", "时间（UTC）"),
    "target": ("Finding or case", "发现或案件"),
    "decision": ("Decision", "结论"),
    "note": ("Note", "备注"),
    "digest": ("Digest", "摘要"),
    "previous_digest": ("Previous digest", "上一条摘要"),
    "case": ("Case", "案件"),
    "evidence_events": ("Events when decided", "作出结论时的事件数"),
    "request_id": ("Queued request", "排队请求"),
    "snooze_id": ("Snooze", "暂缓编号"),
    "created_at": ("Recorded at (UTC)", "记录时间（UTC）"),
    "sheet_reviews": ("Review trail", "复核记录"),
    "sheet_snoozes": ("Snoozes", "暂缓记录"),
    "sheet_awaiting": ("Awaiting decision", "等待结论"),
    # the auditor's classics (report/classics.py)
    "classics": ("The auditor's classics", "审计经典检验"),
    "classics_intro": (
        "The standard tests an auditor runs on any ledger, on this store's approved sales: "
        "Benford's law, the amounts by stratum, duplicate sales, gaps, the refunds' age and a "
        "sample size. They read every record in the store, not only the run's findings "
        "(posaudit analyze and posaudit sample; docs/classics.md).",
        "审计人员对任何账目都会先做的标准检验，对象为本库全部已批准的消费：本福特定律、金额分层、"
        "重复交易、断号与缺失交易日、退款账龄，以及抽样样本量。检验读取库中全部记录，不限于本次"
        "运行的发现（posaudit analyze 与 posaudit sample；见 docs/classics.md）。",
    ),
    "classics_benford": ("Benford's law", "本福特定律"),
    "classics_benford_note": (
        "Nigrini's mean absolute deviation (MAD) decides conformity; the spikes are the digits "
        "found most above their share. Merchants whose digits also depart from their category's "
        "are findings of the rule 'Invented amounts (Benford)'.",
        "是否符合以 Nigrini 的平均绝对偏差（MAD）判断；“突出数字”为出现比例最高于预期的数字。"
        "前两位数字同时偏离同行业分布的商户，列为“疑似编造金额（本福特定律）”规则的发现。",
    ),
    "benford_first_digit": ("first digit", "首位数字"),
    "benford_first_two": ("first two digits", "前两位数字"),
    "benford_last_two": ("last two digits", "末两位数字"),
    "benford_second_order": ("second order", "二阶检验"),
    "band_close": ("close conformity", "高度符合"),
    "band_acceptable": ("acceptable conformity", "可接受的符合"),
    "band_marginal": ("marginally acceptable conformity", "勉强可接受的符合"),
    "band_nonconformity": ("nonconformity", "不符合"),
    "band_none": ("no published bands", "无公布的判断区间"),
    "classics_test": ("test", "检验"),
    "classics_amounts": ("amounts", "金额笔数"),
    "classics_band": ("conformity", "符合程度"),
    "classics_spikes": ("spikes", "突出数字"),
    "classics_digits": ("digits", "数字"),
    "classics_share": ("share of amounts", "金额笔数占比"),
    "classics_count": ("count", "笔数"),
    "classics_found": ("found share", "实际占比"),
    "classics_expected": ("expected share", "预期占比"),
    "classics_strata": ("Sales by stratum of amount", "按金额分层的消费"),
    "classics_strata_note": (
        "The bounds are the sales' median and 80th, 95th and 99th percentiles.",
        "分层界限为消费金额的中位数及第 80、95、99 百分位数。",
    ),
    "classics_stratum": ("stratum", "层"),
    "classics_from": ("from (CNY)", "起（元）"),
    "classics_below": ("below (CNY)", "止于（元，不含）"),
    "classics_count_share": ("share of count", "笔数占比"),
    "classics_amount": ("amount (CNY)", "金额（元）"),
    "classics_amount_share": ("share of amount", "金额占比"),
    "stratum_under": ("under {upper}", "低于 {upper}"),
    "stratum_over": ("{lower} or more", "{lower} 及以上"),
    "stratum_between": ("{lower} to {upper}", "{lower} 至 {upper}"),
    "classics_duplicates": ("Duplicate sales", "重复消费"),
    "classics_kind": ("kind", "类型"),
    "classics_pairs": ("pairs", "对数"),
    "duplicate_exact": ("exact: same card, amount and terminal", "完全重复：同卡、同金额、同终端"),
    "duplicate_other_terminal": (
        "same card and amount at another terminal of the merchant",
        "同卡、同金额、同商户的其他终端",
    ),
    "duplicate_near_amount": ("near: amounts within the tolerance", "近似重复：金额在容差之内"),
    "classics_gaps": ("Gaps", "断号与缺失交易日"),
    "gaps_line": (
        "{missing} trace numbers are missing inside batches ({gaps} gaps in {batches} batches "
        "of {terminals} terminals); terminals went silent on {days} days they usually trade "
        "({day_terminals} terminals).",
        "批次内缺失流水号 {missing} 个（{terminals} 台终端 {batches} 个批次中共 {gaps} 处断号）；"
        "终端在通常营业的日子没有交易的共 {days} 天（{day_terminals} 台终端）。",
    ),
    "classics_ageing": ("Refunds by days after their sale", "退款距原消费的天数"),
    "classics_age": ("age", "账龄"),
    "classics_refunds": ("refunds", "退款笔数"),
    "classics_sampling": ("A sample to test by hand", "人工测试的抽样"),
    "sample_line": (
        "A monetary-unit sample at 95 % confidence, 5 % tolerable and 1 % expected misstatement "
        "(the AICPA formula) takes {size} units of the {items} approved sales worth {amount} "
        "CNY: one every {interval} CNY. posaudit sample draw writes it to a file to test; "
        "posaudit sample evaluate gives the upper misstatement limit of what was found.",
        "按 95% 置信度、5% 可容忍错报、1% 预期错报（AICPA 公式），货币单位抽样从 {items} 笔、"
        "合计 {amount} 元的已批准消费中抽取 {size} 个单位：每 {interval} 元抽取一个。"
        "posaudit sample draw 将样本写入文件供测试；posaudit sample evaluate 给出所发现错报的"
        "错报上限。",
    ),
    "sample_empty": ("The store holds no approved sale to sample.", "本库没有可抽样的已批准消费。"),
    "sheet_benford": ("Benford", "本福特定律"),
    "sheet_strata": ("Strata", "金额分层"),
    "sheet_duplicates": ("Duplicate sales", "重复消费"),
    "sheet_trace_gaps": ("Trace number gaps", "流水号断号"),
    "sheet_silent_days": ("Silent days", "缺失交易日"),
    "sheet_refund_ageing": ("Refund ageing", "退款账龄"),
    "sheet_findings_ageing": ("Findings ageing", "发现账龄"),
}

# The classics' age bands (posaudit.classics.ageing), in the report's words.
AGE_BANDS: Final[dict[str, tuple[str, str]]] = {
    "same day": ("same day", "当天"),
    "1-7 days": ("1-7 days", "1-7 天"),
    "8-15 days": ("8-15 days", "8-15 天"),
    "16-30 days": ("16-30 days", "16-30 天"),
    "31-90 days": ("31-90 days", "31-90 天"),
    "over 90 days": ("over 90 days", "90 天以上"),
    "no sale on record": ("no sale on record", "无原消费记录"),
    "0-7 days": ("0-7 days", "0-7 天"),
    "8-30 days": ("8-30 days", "8-30 天"),
    "31-60 days": ("31-60 days", "31-60 天"),
    "61-90 days": ("61-90 days", "61-90 天"),
}
REVIEW_STATUSES: Final[dict[str, tuple[str, str]]] = {
    "open": ("open", "待处理"),
    "in_review": ("in review", "复核中"),
    "closed": ("closed", "已结案"),
}
DECISIONS: Final[dict[str, tuple[str, str]]] = {
    "confirmed_fraud": ("confirmed fraud", "确认舞弊"),
    "policy_breach": ("policy breach", "违反政策"),
    "false_positive": ("false positive", "误报"),
    "benign_explained": ("benign, explained", "正常且已解释"),
}

# What each severity asks of an analyst; the scale and each rule's place on it are in
# docs/detection.md#severity.
SEVERITY_GLOSSARY: Final[dict[str, tuple[str, str]]] = {
    "critical": (
        "Act today: money is leaving through a login its owner may not hold (refunds right after a suspicious login).",
        "需当天处理：资金正通过可能已不在本人掌握中的登录账号流出（可疑登录后随即发生的退款）。",
    ),
    "high": (
        "Act today: an attack on a login that worked (a guessed PIN that got in); no money seen leaving yet.",
        "需当天处理：针对登录账号的攻击已经得手（猜中密码并已登录），尚未发现资金流出。",
    ),
    "medium": (
        "Review within the review deadline: a pattern of abuse, an attack that did not get in, or a broken control (refund, lockout or PIN rules).",
        "需在复核期限内复核：滥用模式、未得手的攻击，或被违反的控制措施（退款、锁定或密码规则）。",
    ),
    "low": (
        "Note: a lead or a lesser lapse (an unusual operator-day, a PIN kept past its change date).",
        "备注：线索或较轻的疏漏（异常的操作员日、超过更换期限仍在使用的密码）。",
    ),
    "info": (
        "Health note: accuses nobody (e.g. a terminal's bad network).",
        "运行状况提示：不指向任何人（例如终端网络不佳）。",
    ),
}

FAMILIES: Final[dict[str, tuple[str, str]]] = {
    "logins": ("Logins and lockouts", "登录与锁定"),
    "pins": ("Operator PINs", "操作员密码"),
    "privileges": ("Operator privileges", "操作员权限"),
    "refunds": ("Refunds", "退款"),
    "sales": ("Sales patterns", "交易模式"),
    "ledger": ("Fees and completeness", "手续费与记录完整性"),
    "merchants": ("Merchant typologies", "商户风险类型"),
    "scores": ("Anomaly scores", "异常评分"),
}
FAMILY_INTROS: Final[dict[str, tuple[str, str]]] = {
    "logins": (
        "Who is guessing PINs or operator numbers, who shares a login, and which terminals do not lock.",
        "谁在猜测密码或操作员编号、谁在共用登录账号，以及哪些终端未执行锁定策略。",
    ),
    "pins": (
        "Operators whose PIN is weak, the acquirer's default, stale, shared or reused.",
        "密码过弱、仍为默认密码、超期未换、与他人共用或改回旧密码的操作员。",
    ),
    "privileges": (
        "Who can manage and refund at once, permissions used as soon as granted, refunds after an "
        "administrator reset, operators who never sign in, and factory-default PINs.",
        "同时拥有管理与退款权限者、权限授予后随即使用、管理员重置后即退款、从未登录的操作员，以及出厂默认密码。",
    ),
    "refunds": (
        "Refunds that break the refund rules, and refund patterns that look like cash-out.",
        "违反退款规则的退款，以及疑似套现的退款模式。",
    ),
    "sales": (
        "Split sales, card testing, duplicated or replayed records, and voids made after the "
        "customer has gone.",
        "拆单、盗卡测试、重复或重放的交易记录，以及顾客离开后的撤销。",
    ),
    "ledger": (
        "Fees recomputed from the fee table, trace numbers missing inside a batch, and batch "
        "totals that do not add up.",
        "按费率表重算的手续费差异、批次内缺失的流水号，以及对不上的批次汇总。",
    ),
    "merchants": (
        "Merchants that cash out through sales, use another category's fee class, or wake up "
        "from silence at the top of their category.",
        "通过消费套现、套用其他行业费率（跳码），或沉寂后突然跃居同行业前列的商户。",
    ),
    "scores": (
        "Operator-days that stand out from the merchant's other operators and from the operator's own past.",
        "与本商户其他操作员及其自身历史相比明显异常的操作员日。",
    ),
}
SEVERITIES: Final[dict[str, tuple[str, str]]] = {
    "critical": ("Critical", "严重"),
    "high": ("High", "高"),
    "medium": ("Medium", "中"),
    "low": ("Low", "低"),
    "info": ("Info", "提示"),
}
ENTITY_TYPES: Final[dict[str, tuple[str, str]]] = {
    "operator": ("operator", "操作员"),
    "terminal": ("terminal", "终端"),
    "merchant": ("merchant", "商户"),
    "transaction": ("transaction", "交易"),
    "card": ("card", "卡"),
}
# The reason codes of the quarantine (docs/ingest.md), as the provenance section names them.
QUARANTINE_REASONS: Final[dict[str, tuple[str, str]]] = {
    "bad_row": ("malformed row", "行格式错误"),
    "bad_timestamp": ("bad date or time", "日期或时间无效"),
    "bad_amount": ("bad amount", "金额无效"),
    "bad_number": ("bad number", "数字无效"),
    "bad_digest": ("bad PIN digest", "密码摘要无效"),
    "unknown_value": ("unknown value", "未知取值"),
    "missing_value": ("missing value", "缺少必填值"),
    "out_of_range": ("out of range", "超出范围"),
    "unknown_merchant": ("unknown merchant", "未知商户"),
    "unknown_terminal": ("unknown terminal", "未知终端"),
    "unknown_operator": ("unknown operator", "未知操作员"),
    "duplicate_in_file": ("repeated in the files", "文件内重复"),
}

# The store's tables an ingest loads, as the provenance section names them.
TABLES: Final[dict[str, tuple[str, str]]] = {
    "merchants": ("merchants", "商户"),
    "terminals": ("terminals", "终端"),
    "operators": ("operators", "操作员"),
    "login_events": ("logins", "登录记录"),
    "lockouts": ("lockouts", "锁定记录"),
    "pin_events": ("PIN events", "密码事件"),
    "transactions": ("transactions", "交易"),
}

STATUSES: Final[dict[str, tuple[str, str]]] = {
    "open": ("open", "未解决"),
    "resolved": ("resolved", "已解决"),
}

RULES: Final[dict[str, tuple[str, str]]] = {
    "pin_brute_force": ("PIN guessing", "密码暴力猜测"),
    "operator_enumeration": ("Operator number enumeration", "操作员编号枚举"),
    "lockout_storm": ("Lockout storms", "集中锁定"),
    "lockout_not_enforced": ("Lockout not enforced", "未执行锁定策略"),
    "credential_sharing": ("Shared logins", "登录账号共用"),
    "network_failure_burst": ("Network failure bursts", "网络故障集中出现"),
    "weak_pins": ("Weak PINs", "弱密码"),
    "default_pins": ("Default PINs", "默认密码"),
    "stale_pins": ("Stale PINs", "密码超期未换"),
    "shared_pins": ("Shared PINs", "共用密码"),
    "reused_pins": ("Reused PINs", "重复使用旧密码"),
    "refunds_without_sale": ("Refunds without a sale", "无原交易的退款"),
    "refunds_over_sale": ("Refunds over the sale", "超过原交易金额的退款"),
    "refunds_to_other_card": ("Refunds to another card", "退至非原付款卡的退款"),
    "refunds_without_permission": ("Refunds without permission", "无权限退款"),
    "late_refunds": ("Late refunds", "超期退款"),
    "off_hours_refunds": ("Off-hours refunds", "非营业时间退款"),
    "refund_bursts": ("Refund bursts", "集中退款"),
    "round_amount_refunds": ("Round-amount refunds", "整数金额退款"),
    "refunds_after_suspicious_login": ("Refunds after a suspicious login", "可疑登录后的退款"),
    "operator_anomaly_scores": ("Operator anomaly scores", "操作员异常评分"),
    # fees and completeness
    "fee_mismatches": ("Fees off the fee table", "手续费与费率表不符"),
    "duplicate_transactions": ("Duplicated records", "重复交易记录"),
    "trace_gaps": ("Trace number gaps", "流水号缺失"),
    "batch_total_mismatches": ("Batch totals that do not add up", "批次汇总不符"),
    # privilege audit
    "permission_granted_then_used": (
        "Refund right used as soon as granted",
        "退款权限授予后随即使用",
    ),
    "refunds_after_admin_reset": (
        "Refunds after an administrator's reset",
        "管理员重置密码后的退款",
    ),
    "manage_and_refund": ("Clerks with manage and refund rights", "同时拥有管理与退款权限的操作员"),
    "never_logged_in": ("Accounts never logged in", "从未登录的账户"),
    "common_default_pins": ("Common default PINs", "常见默认密码"),
    # sales patterns
    "split_sales": ("Split sales", "拆单"),
    "card_testing": ("Card testing", "测卡"),
    "void_abuse": ("Late voids", "事后撤销"),
    # merchant typologies
    "cash_out_sales": ("Cash-out through sales", "消费套现"),
    "category_misuse": ("Category misuse", "跳码（套用他类费率）"),
    "dormant_surge": ("Dormant terminal surges", "沉寂终端突增"),
    "invented_amounts": ("Invented amounts (Benford)", "疑似编造金额（本福特定律）"),
}
# The English description is the rule's docstring; these are its Chinese counterparts.
RULE_DESCRIPTIONS_ZH: Final[dict[str, str]] = {
    "pin_brute_force": "同一终端上同一操作员在一次连续尝试中输错大量密码：有人在猜测该操作员的密码。",
    "operator_enumeration": "同一终端在一次连续失败登录中被尝试了大量操作员编号：有人在逐个试探可登录的操作员。",
    "lockout_storm": "同一终端在一小时内有多名操作员被锁定：有人在逐个操作员地猜测密码。",
    "lockout_not_enforced": "终端的锁定设置宽于政策（从不锁定、允许错误次数过多或锁定时间过短），或实际发生了多次连续输错而未锁定。",
    "credential_sharing": "同一操作员的登录在几分钟内交替出现在两台终端上：登录账号被共用或被盗用。",
    "network_failure_burst": "终端在短时间内多次无法连接主机（运行状况提示，不是密码错误）。",
    "weak_pins": "审计期内操作员使用的密码属于某一弱点类别（重复数字、顺序数字、日期、常见密码等）。",
    "default_pins": "管理员仍在使用安装时收单机构设置的默认密码，从未更改。",
    "stale_pins": "密码使用时间超过政策规定的最长期限（PCI DSS 8.3.9：至少每 90 天更换）。",
    "shared_pins": "同一商户的多名操作员在同一时间使用相同的密码，其操作无法区分到人。",
    "reused_pins": "修改或重置密码时改回了最近几次用过的旧密码（PCI DSS 8.3.7：不得与最近 4 个相同）。",
    "refunds_without_sale": "已批准的退款未引用原交易，或引用的原交易并不存在。",
    "refunds_over_sale": "连同此前的退款，累计退款金额超过了原交易金额。",
    "refunds_to_other_card": "已批准的退款退至与原交易付款卡或钱包不同的卡或钱包。",
    "refunds_without_permission": "已批准的退款由没有退款权限、不在记录中或已停用的操作员办理。",
    "late_refunds": "已批准的退款距原交易的时间超过收单机构规定的退款期限。",
    "off_hours_refunds": "操作员在商户打烊期间办理多笔退款。",
    "refund_bursts": "操作员在短时间内办理大量退款。",
    "round_amount_refunds": "操作员在几小时内办理多笔整数金额的部分退款：疑似套现。",
    "refunds_after_suspicious_login": "操作员在可疑登录（锁定或多次输错密码之后）后立即办理退款，且部分退至未付款的卡。",
    "operator_anomaly_scores": "以孤立森林模型评估每个操作员日的活动，找出与本商户其他操作员及其自身历史相比最突出的操作员日。",
    # fees and completeness
    "fee_mismatches": "按费率表和商户费率类别重算每笔已批准消费的手续费（精确到分），收费与之不符的商户日。",
    "duplicate_transactions": "已批准的消费在数秒内重复终端上一笔同卡、同金额的已批准消费：记录被重复或以新流水号重放。",
    "trace_gaps": "终端同一批次内的流水号出现跳号：终端已编号的记录未进入或被删出数据。",
    "batch_total_mismatches": "终端结算时的批次汇总与该批次的记录对不上：已批准记录或金额缺失或多出。",
    # privilege audit
    "permission_granted_then_used": "操作员获得退款权限后，在规定小时数内即办理退款：权限是为这几笔退款而授予的。",
    "refunds_after_admin_reset": "管理员重置某操作员的密码后，短时间内以该操作员编号办理了多笔退款。",
    "manage_and_refund": "普通操作员同时拥有管理权限和退款权限（职责分离）；管理员按设计拥有两者，不在此列。",
    "never_logged_in": "可收款或退款的普通操作员账户从未登录，而同一终端的其他操作员平均已登录多次。",
    "common_default_pins": "操作员仍在使用其编号在该终端型号上的常见默认密码（首位收银员的默认密码，以及支持 8 位密码的智能终端上管理员的默认密码；见 docs/domain.md）。",
    # sales patterns
    "split_sales": "同一终端在几分钟内用同一张卡连续完成多笔销售：一笔交易被拆成几笔（拆单）。",
    "card_testing": "终端在短时间内有大量来自不同卡的小额销售被拒：有人在测试盗取的卡号是否可用（测卡）。",
    "void_abuse": "操作员在销售很久之后（批次结束时、顾客早已离开）撤销多笔销售，且多于本商户其他操作员。",
    # merchant typologies
    "cash_out_sales": "同日重复刷卡、金额略低于整千元且从未退款或撤销的信用卡消费，集中出现在同行业几乎无交易的时段：疑似套现。",
    "category_misuse": "优惠或公益费率商户的金额、时段与支付渠道构成明显偏向另一行业：疑似跳码。",
    "dormant_surge": "沉寂一个月以上的终端恢复交易后，日交易笔数进入同行业前十分之一，且为此前水平的数倍。",
    "invented_amounts": "消费金额的前两位数字既偏离本福特定律，也偏离同行业商户的分布（平均绝对偏差超过 Nigrini 的不符合界限，且卡方检验显著）：疑似手工编造的金额。",
}
PARAMETERS: Final[dict[str, tuple[str, str]]] = {
    "min_failures": ("fewest failed attempts", "最少失败次数"),
    "max_gap_minutes": ("longest gap inside one burst (minutes)", "同一批次内最长间隔（分钟）"),
    "min_piece_percent": (
        "smallest sale of a run as a share of its largest, at least (%)",
        "同一组中最小一笔占最大一笔的比例下限（%）",
    ),
    "success_within_minutes": (
        "success this soon after counts as a hit (minutes)",
        "随后多久内成功登录视为猜中（分钟）",
    ),
    "min_operator_numbers": ("fewest operator numbers tried", "最少尝试的操作员编号数"),
    "min_operators": ("fewest operators locked", "最少被锁定的操作员数"),
    "max_lockouts_per_operator": ("most lockouts of one operator", "单个操作员最多锁定次数"),
    "max_failures": ("policy: lock after at most this many wrong PINs", "政策：最多输错几次即锁定"),
    "min_lockout_minutes": ("policy: lock for at least (minutes)", "政策：最短锁定时间（分钟）"),
    "min_switches": ("fewest switches between terminals", "最少终端切换次数"),
    "cover_sign_on_minutes": (
        "sign-ons at two tills this close are a shift cover (minutes)",
        "在两台终端先后登录间隔不超过此值视为代班（分钟）",
    ),
    "window_minutes": ("window (minutes)", "时间窗口（分钟）"),
    "min_errors": ("fewest network errors", "最少网络错误次数"),
    "max_age_days": ("longest PIN age (days)", "密码最长使用天数"),
    "history_size": ("previous PINs a new PIN must differ from", "新密码不得与之前几个相同"),
    "tolerance_fen": ("tolerance (fen)", "容差（分）"),
    "max_settle_hours": (
        "longest a batch stays open after its last record (hours)",
        "批次最后一笔记录后至结算的最长时间（小时）",
    ),
    "refund_window_days": ("refund window (days)", "退款期限（天）"),
    "grace_minutes": ("grace after closing (minutes)", "打烊后宽限时间（分钟）"),
    "min_refunds": ("fewest refunds", "最少退款笔数"),
    "cluster_gap_minutes": (
        "longest gap inside one cluster (minutes)",
        "同一批次内最长间隔（分钟）",
    ),
    "round_unit_fen": ("round unit (fen)", "整数单位（分）"),
    "min_amount_fen": ("smallest amount (fen)", "最小金额（分）"),
    "window_hours": ("window (hours)", "时间窗口（小时）"),
    "failure_window_minutes": (
        "window for the failures before the login (minutes)",
        "登录前失败次数的统计窗口（分钟）",
    ),
    "unlock_window_minutes": ("window after an unlock (minutes)", "解锁后的时间窗口（分钟）"),
    "min_refunds_to_other_card": ("fewest refunds to another card", "最少退至他卡的笔数"),
    "top_fraction": ("share of operator-days reported", "报告的操作员日比例"),
    "high_fraction": ("share of operator-days rated high", "评为“高”的操作员日比例"),
    "min_anomaly_score": ("lowest anomaly score reported", "报告的最低异常分"),
    "medium_anomaly_score": (
        "anomaly score above which a finding is medium",
        "异常分高于此值时评为“中”",
    ),
    "lead_anomaly_score": (
        "anomaly score a day without repeat-card refunds must exceed to be reported",
        "无重复卡退款的操作员日须超过此异常分才报告",
    ),
    "medium_repeat_refunds": (
        "refunds to repeat cards in 28 days for a medium finding",
        "28 天内退至重复卡的退款笔数达到此值时评为“中”",
    ),
    "seed": ("random seed of the model", "模型随机种子"),
    "n_estimators": ("trees in the forest", "森林中的树数量"),
    "max_samples": ("sample size per tree", "每棵树的样本量"),
    "fit_rows": ("most operator-days the forest is fitted on", "拟合森林所用的最多操作员日数"),
    # fees and completeness
    "min_difference_fen": ("smallest fee difference of a record (fen)", "单笔最小手续费差额（分）"),
    "max_gap_seconds": ("longest time between the two sales (seconds)", "两笔消费的最长间隔（秒）"),
    "max_trace_no": ("largest trace number, then 1 again", "最大流水号（之后从 1 重新开始）"),
    "max_missing": ("most numbers a batch may miss", "一个批次最多缺失的号数"),
    # privilege audit
    "max_hours": ("longest time that counts (hours)", "计入的最长时间（小时）"),
    "asked_within_minutes": (
        "a failed login this soon before means the operator asked (minutes)",
        "重置前多久内本人登录失败视为本人申请（分钟）",
    ),
    "min_expected_logins": (
        "fewest logins the clerk's fair share must reach",
        "该操作员应有登录次数的下限",
    ),
    # sales patterns
    "min_sales": ("fewest sales", "最少消费笔数"),
    "min_declines": ("fewest declined sales", "最少被拒销售笔数"),
    "min_cards": ("fewest distinct cards", "最少不同卡数"),
    "max_amount_share": (
        "largest median declined amount, as a share of the average sale",
        "被拒金额中位数占平均销售金额的最大比例",
    ),
    "late_void_minutes": (
        "a void this long after its sale is late (minutes)",
        "销售后超过此时长的撤销视为事后撤销（分钟）",
    ),
    "max_retried_share": (
        "largest share of the declines paid again on the same card",
        "被拒后用同一张卡重新付款的最大比例",
    ),
    "retry_minutes": (
        "a sale on the same card this soon after a decline is paying again (minutes)",
        "被拒后此时长内同卡付款视为重新付款（分钟）",
    ),
    "baseline_days": (
        "days before a burst whose sales make the terminal's usual sale",
        "构成终端平时销售的被拒前天数",
    ),
    "min_late_voids": ("fewest late voids in a day", "每日最少事后撤销笔数"),
    "correction_minutes": (
        "a sale on the same card this soon after a void makes it a correction (minutes)",
        "撤销后此时长内同卡重新收款视为更正（分钟）",
    ),
    # merchant typologies
    "odd_hour_percent": (
        "a three-hour bin with less than this share of the category's sales is odd (%)",
        "同行业消费占比低于此值的三小时时段视为异常时段（%）",
    ),
    "min_peers": (
        "fewest other merchants or terminals of the category",
        "同行业最少其他商户或终端数",
    ),
    "merge_days": (
        "flagged days this close make one episode",
        "间隔不超过此天数的异常日合并为一次",
    ),
    "min_shift_percent": (
        "least shift from its category's profile toward another's (%)",
        "向另一行业特征偏移的最小比例（%）",
    ),
    "min_spread_multiple": (
        "least distance, in typical merchant-to-category distances",
        "最小偏离（以商户与行业的典型距离计）",
    ),
    "min_silent_days": ("fewest days without a sale", "最少无交易天数"),
    "min_amounts": (
        "fewest amounts a merchant needs to be tested",
        "商户参与检验所需的最少金额笔数",
    ),
    "max_mad": (
        "largest mean absolute deviation that conforms (Nigrini)",
        "视为符合的最大平均绝对偏差（Nigrini）",
    ),
    "min_z": (
        "least chi-square against the category, as a normal deviate",
        "相对同行业卡方值的最小标准正态偏差",
    ),
    "under_percent": (
        "how far under a round sum of 20, 50 or 100 is just under (%)",
        "低于 20、50 或 100 整数金额多少以内视为略低（%）",
    ),
    "min_under_percent": (
        "least share of the excess amounts just under round sums (%)",
        "超出部分中略低于整数金额的最小比例（%）",
    ),
    "min_jump": ("least multiple of its own earlier sales", "相对自身此前交易量的最小倍数"),
    "top_percent": (
        "busiest share of the category's terminal-days (%)",
        "同行业终端日交易量前列比例（%）",
    ),
    "surge_days": ("days measured after the return", "恢复后统计的天数"),
}
# How the PIN rules name the weakness classes in their sentences.
WEAKNESS_CLASSES: Final[dict[str, tuple[str, str]]] = WEAKNESS_WORDS
AGE_BUCKETS: Final[dict[str, tuple[str, str]]] = {
    "91-180": ("91 to 180 days", "91 至 180 天"),
    "181-365": ("181 days to 1 year", "181 天至 1 年"),
    "1-2y": ("1 to 2 years", "1 至 2 年"),
    "2y+": ("over 2 years", "2 年以上"),
}
FEATURES: Final[dict[str, tuple[str, str]]] = {
    "sale_count": ("sales", "销售笔数"),
    "sale_amount_fen": ("sales amount", "销售金额"),
    "refund_count": ("refunds", "退款笔数"),
    "refund_amount_fen": ("refund amount", "退款金额"),
    "refund_rate": ("refund rate", "退款率"),
    "refund_card_count": ("cards refunded", "退款卡数"),
    "repeat_card_refund_count": (
        "refunds to cards refunded in the 28 days before",
        "退至前 28 天内退过款的卡的笔数",
    ),
    "full_refund_share": ("share of full refunds", "全额退款占比"),
    "void_count": ("voids", "撤销笔数"),
    "wrong_pin_count": ("wrong PINs", "密码错误次数"),
    "lockout_count": ("lockouts", "锁定次数"),
    "login_count": ("logins", "登录次数"),
    "off_hours_share": ("share of activity off hours", "非营业时间活动占比"),
    "terminal_count": ("terminals used", "使用的终端数"),
    "refund_count_28d": ("refunds in 28 days", "28 天内退款笔数"),
    "refund_rate_28d": ("refund rate over 28 days", "28 天退款率"),
    "repeat_refund_card_count_28d": (
        "cards refunded repeatedly in 28 days",
        "28 天内重复退款的卡数",
    ),
    "refunds_to_repeat_cards_28d": (
        "refunds to repeat cards in 28 days",
        "28 天内退至重复卡的笔数",
    ),
    "repeat_card_refund_share_28d": (
        "share of refunds to repeat cards in 28 days",
        "28 天内退至重复卡的占比",
    ),
}
# Who set a PIN, as the PIN rules name them.
_SET_BY: Final[dict[str, tuple[str, str]]] = ACTOR_WORDS


# The one spacing rule of Chinese text: one half-width space between a Chinese character and
# a Latin letter or Arabic numeral (a number's % sign goes with it), none between two Chinese
# characters, none beside full-width punctuation.
_HAN: Final = "\u3400-\u4dbf\u4e00-\u9fff"
_HALF_WIDTH: Final = "A-Za-z0-9%"
_FULL_WIDTH_PUNCTUATION: Final = "，。、；：？！（）“”‘’《》【】"
_SPACE_BETWEEN_HAN: Final = re.compile(f"(?<=[{_HAN}]) +(?=[{_HAN}])")
_SPACE_BY_PUNCTUATION: Final = re.compile(f" *([{_FULL_WIDTH_PUNCTUATION}]) *")
_HAN_THEN_HALF: Final = re.compile(f"(?<=[{_HAN}])(?=[{_HALF_WIDTH}])")
_HALF_THEN_HAN: Final = re.compile(f"(?<=[{_HALF_WIDTH}])(?=[{_HAN}])")


def zh_spacing(value: str) -> str:
    """Chinese text spaced by the report's one rule.

    >>> zh_spacing("是原交易金额 149.81 元 的 2.07倍（1至2年）")
    '是原交易金额 149.81 元的 2.07 倍（1 至 2 年）'
    """
    value = _SPACE_BETWEEN_HAN.sub("", value)
    value = _SPACE_BY_PUNCTUATION.sub(r"\1", value)
    value = _HAN_THEN_HALF.sub(" ", value)
    return _HALF_THEN_HAN.sub(" ", value)


def english_count(n: int, one: str, many: str) -> str:
    """'1 rule', '1,208 rules': an English count with its noun."""
    return f"{n:,} {one if n == 1 else many}"


def money_text(fen: int | float | str, lang: Language) -> str:
    """An amount of fen as the report writes every amount: '12,050.52 CNY' / '12,050.52 元'."""
    return _money(fen, lang)


def _pick(pair: tuple[str, str], lang: Language) -> str:
    return pair[0] if lang == "en" else pair[1]


def text(key: str, lang: Language, **values: object) -> str:
    """A word or sentence of the page in ``lang``, with ``{placeholders}`` filled."""
    template = _pick(UI[key], lang)
    filled = template.format(**values) if values else template
    return zh_spacing(filled) if lang == "zh" else filled


def label(table: dict[str, tuple[str, str]], key: str, lang: Language) -> str:
    """A value's label (family, severity, rule, ...); the key itself when it has none."""
    pair = table.get(key)
    return _pick(pair, lang) if pair else key


# -- finding sentences -----------------------------------------------------------------------

# Each rule's sentence in both languages, declared next to the rule.
SENTENCES: Final[dict[str, Sentence]] = {
    **logins.SENTENCES,
    **pins.SENTENCES,
    **refunds.SENTENCES,
    **operators.SENTENCES,
    **ledger.SENTENCES,
    **privileges.SENTENCES,
    **sales.SENTENCES,
    **merchants.SENTENCES,
}


@dataclass(frozen=True)
class FindingFacts:
    """What a finding's sentence is written from: its rule and stored summary, and the operators
    it is about by id (they place the operator numbers a masked sentence replaces)."""

    rule: str
    summary: str
    operator_ids: tuple[str, ...]
    pseudonyms: Pseudonyms


def _operator_label(facts: FindingFacts) -> OperatorLabel:
    """An operator number's pseudonym: the operator the finding names by id whose number it is
    (at the terminal the sentence names, if one is), else the operator of that number there."""
    known = set(facts.operator_ids)

    def pseudonym(number: str, terminal: str | None) -> str:
        if number in known or OPERATOR_ID.fullmatch(number):
            return facts.pseudonyms.operator(number)
        if terminal and f"{terminal}-{number}" in known:
            return facts.pseudonyms.operator(f"{terminal}-{number}")
        matches = {i for i in known if i.endswith(f"-{number}")}
        if len(matches) == 1:
            return facts.pseudonyms.operator(matches.pop())
        return facts.pseudonyms.number(terminal, number)

    return pseudonym


def finding_sentence(facts: FindingFacts, lang: Language) -> str | None:
    """The finding's sentence in ``lang``; None when it must fall back to the stored summary.

    The facts are those the stored summary states, read back with the rule's sentence, so the
    English sentence is the summary itself (operators masked when the report masks them) and
    the Chinese one says the same. A rule without a sentence, or a summary its sentence did not
    write (an earlier version of the rule's), gives None. An English sentence starts with a
    capital and ends with a full stop, a Chinese one ends with "。" and follows
    :func:`zh_spacing`.
    """
    sentence = SENTENCES.get(facts.rule)
    values = sentence.parse(facts.summary) if sentence is not None else None
    if sentence is None or values is None:
        return None
    operator = _operator_label(facts) if facts.pseudonyms.enabled else None
    try:
        written = sentence.render(values, lang, operator=operator)
    except KeyError:
        return None
    if lang == "zh":
        return zh_spacing(written) + "。"
    return written[:1].upper() + written[1:] + "."


# -- one formatting rule for every number, in both languages ---------------------------------


def _n(value: Any) -> str:
    """A count or whole number: '1,499'."""
    return f"{int(value):,}"


def _decimal(value: int | float | str) -> str:
    """A measure with one decimal: '28.9'."""
    return f"{float(value):,.1f}"


def _money(fen: int | float | str, lang: Language) -> str:
    """An amount of fen as yuan: '12,050.52 CNY' / '12,050.52 元'."""
    yuan = f"{int(fen) / 100:,.2f}"
    return f"{yuan} CNY" if lang == "en" else f"{yuan} 元"


def _share(value: int | float | str) -> str:
    """A share in 0..1 as a percentage, never rounded up to 100 %: '99.9%'."""
    return f"{math.floor(float(value) * 1000) / 10:.1f}%"


def _minute(value: datetime | str) -> str:
    if isinstance(value, str):
        return value.replace("T", " ")[:16]
    return value.strftime("%Y-%m-%d %H:%M")


_SHARE_FEATURES: Final = frozenset(
    {
        "refund_rate",
        "refund_rate_28d",
        "off_hours_share",
        "full_refund_share",
        "repeat_card_refund_share_28d",
    }
)


# -- evidence, key by key ----------------------------------------------------------------------

EvidenceKind = Literal[
    "text",
    "count",
    "money",
    "days",
    "minutes",
    "hours",
    "share",
    "percentile",
    "score",
    "stamp",
    "bool",
    "number",
    "set_kind",
    "set_by",
    "reason",
    "unlock",
    "weakness",
    "lockout_reasons",
    "features",
    "sharing_view",
    "fee_kind",
    "fee_class",
    "terminal_family",
    "decline_reason",
    "category",
    "fee_class",
]
# Every key a rule writes into its evidence: its label in both languages and how its value
# reads (the unit goes with the value: '30 minutes', '27.46 元'). Anomaly features read with
# FEATURES' labels.
EVIDENCE: Final[dict[str, tuple[str, str, EvidenceKind]]] = {
    # who and where
    "operator_id": ("operator", "操作员", "text"),
    "operator_no": ("operator number", "操作员编号", "text"),
    "operator_nos": ("operator numbers", "操作员编号", "text"),
    "operator_ids": ("operators", "操作员", "text"),
    "other_operator_ids": ("other operators", "其他操作员", "text"),
    "other_operators": ("other operators", "其他操作员", "text"),
    "terminal_id": ("terminal", "终端", "text"),
    "terminal_ids": ("terminals", "终端", "text"),
    "home_terminal_id": ("home terminal", "所属终端", "text"),
    # event ids
    "event_ids": ("events", "事件编号", "text"),
    "login_event_id": ("login event", "登录事件编号", "text"),
    "login_event_ids": ("login events", "登录事件编号", "text"),
    "lockout_id": ("lockout", "锁定编号", "text"),
    "lockout_ids": ("lockouts", "锁定编号", "text"),
    "pin_event_id": ("PIN event", "密码事件编号", "text"),
    "refund_txn_id": ("refund", "退款交易编号", "text"),
    "refund_txn_ids": ("refunds", "退款交易编号", "text"),
    "repeat_card_refund_txn_ids": ("refunds to repeat cards", "退至重复卡的退款编号", "text"),
    "original_txn_id": ("original sale", "原交易编号", "text"),
    "refund_card_token": ("card refunded to", "退款卡标记", "text"),
    "sale_card_token": ("card that paid the sale", "原付款卡标记", "text"),
    # logins
    "attempts": ("failed logins", "登录失败次数", "count"),
    "failures": ("failed attempts", "失败次数", "count"),
    "wrong_attempts": ("wrong PINs", "密码错误次数", "count"),
    "locked_attempts": ("attempts while locked", "锁定期间尝试次数", "count"),
    "lockouts": ("lockouts", "锁定次数", "count"),
    "ended_in_success": ("ended in a login", "最终登录成功", "bool"),
    "lockout_threshold": ("terminal locks after (wrong PINs)", "终端锁定前允许输错次数", "count"),
    "lockout_minutes": ("terminal locks for", "终端锁定时长", "minutes"),
    "operator_numbers": ("operator numbers tried", "尝试的操作员编号数", "count"),
    "unknown_numbers": ("unknown operator numbers", "不存在的操作员编号数", "count"),
    "unknown_attempts": ("attempts on unknown numbers", "对不存在编号的尝试次数", "count"),
    "operators_tried": ("existing operators tried", "被尝试的现有操作员数", "count"),
    "operators": ("operators locked out", "被锁定的操作员数", "count"),
    "runs_without_lockout": (
        "runs of wrong PINs without a lockout",
        "未触发锁定的连续输错轮数",
        "count",
    ),
    "longest_run": ("longest run of wrong PINs", "最长连续输错次数", "count"),
    "setting_looser": ("setting looser than policy", "设置宽于政策", "bool"),
    "reasons": ("why", "原因", "lockout_reasons"),
    "switches": ("switches between terminals", "终端切换次数", "count"),
    "switches_back": ("switches back", "切回次数", "count"),
    "seen_on": ("seen on", "发现于", "sharing_view"),
    "network_errors": ("network errors", "网络错误次数", "count"),
    # PINs
    "weakness_class": ("weakness class", "弱点类别", "weakness"),
    "set_kind": ("how the PIN was set", "密码设置方式", "set_kind"),
    "set_by": ("set by", "设置人", "set_by"),
    "set_at": ("PIN set", "密码设置时间", "stamp"),
    "held_until": ("held until", "使用至", "stamp"),
    "still_held": ("still held at the end of the data", "数据截止时仍在使用", "bool"),
    "held_days": ("days held", "已使用天数", "days"),
    "age_days": ("PIN age", "密码使用时长", "days"),
    "group_size": ("operators sharing the PIN", "共用该密码的人数", "count"),
    "shared_from": ("shared from", "共用起始", "stamp"),
    "shared_until": ("shared until", "共用截止", "stamp"),
    "still_shared": ("still shared at the end of the data", "数据截止时仍在共用", "bool"),
    "passed_days": ("PIN age passed", "密码已超过的使用天数", "days"),
    "passed_on": ("age passed on", "超过该天数的日期", "stamp"),
    "pins_back": ("PINs back", "往前第几个密码", "count"),
    "earlier_set_at": ("earlier held from", "旧密码最初设置时间", "stamp"),
    # refunds
    "amount_fen": ("refund amount", "退款金额", "money"),
    "sale_amount_fen": ("sale amount", "原交易金额", "money"),
    "sale_refunded_total_fen": ("refunded on the sale in all", "原交易累计退款", "money"),
    "excess_fen": ("refunded over the sale", "超出原交易的金额", "money"),
    "refunded_fen": ("refunded in all", "退款合计", "money"),
    "refunds_of_sale": ("refunds of the sale", "原交易的退款笔数", "count"),
    "refunds": ("refunds", "退款笔数", "count"),
    "refunds_to_other_card": ("refunds to another card", "退至他卡的笔数", "count"),
    "original_named": ("names an original sale", "引用了原交易", "bool"),
    "can_refund": ("operator may refund", "操作员有退款权限", "bool"),
    "right_set_at": ("refund right last changed", "退款权限上次变更时间", "stamp"),
    "reason": ("why", "原因", "reason"),
    "sale_ts": ("sale made", "原交易时间", "stamp"),
    "lag_days": ("days after the sale", "距原交易天数", "days"),
    "opens_at": ("opens at", "开门时间", "text"),
    "closes_at": ("closes at", "打烊时间", "text"),
    "max_outside_minutes": ("furthest outside opening hours", "最多超出营业时间", "minutes"),
    "span_minutes": ("time taken", "历时", "minutes"),
    "unlock_method": ("lockout lifted", "锁定解除方式", "unlock"),
    # anomaly scores
    "day": ("day", "日期", "text"),
    "anomaly_score": ("anomaly score", "异常分", "score"),
    "anomaly_percentile": (
        "scores higher than (share of its week's sample)",
        "高于同周比较样本的比例",
        "percentile",
    ),
    "standout_features": ("standout features", "突出特征", "features"),
    "refund_count_median": (
        "median refunds a day (merchant, else category)",
        "每日退款笔数中位数（本商户，无则同行业）",
        "number",
    ),
    "refund_rate_28d_median": (
        "median 28-day refund rate (merchant, else category)",
        "28 天退款率中位数（本商户，无则同行业）",
        "share",
    ),
    "refund_lag_hours_mean": ("mean hours from sale to refund", "销售至退款平均小时数", "hours"),
    "sale_count_28d": ("sales in 28 days", "28 天内销售笔数", "count"),
    # thresholds the rule ran with (PARAMETERS name them in the method tables)
    "min_failures": ("policy: fewest failed attempts", "阈值：最少失败次数", "count"),
    "max_gap_minutes": ("policy: longest gap", "阈值：最长间隔", "minutes"),
    "min_piece_percent": (
        "policy: smallest sale, % of the largest",
        "阈值：最小一笔占最大一笔（%）",
        "number",
    ),
    "smallest_fen": ("smallest sale", "单笔最小金额", "money"),
    "min_errors": ("policy: fewest network errors", "阈值：最少网络错误次数", "count"),
    "min_operator_numbers": ("policy: fewest operator numbers", "阈值：最少操作员编号数", "count"),
    "min_operators": ("policy: fewest operators locked", "阈值：最少被锁定操作员数", "count"),
    "max_failures": ("policy: lock after at most (wrong PINs)", "政策：最多输错次数", "count"),
    "min_lockout_minutes": ("policy: lock for at least", "政策：最短锁定时长", "minutes"),
    "min_switches": ("policy: fewest switches", "阈值：最少切换次数", "count"),
    "cover_sign_on_minutes": (
        "policy: sign-ons of a shift cover within",
        "阈值：代班登录间隔上限",
        "minutes",
    ),
    "window_minutes": ("policy: window", "阈值：时间窗口", "minutes"),
    "window_hours": ("policy: window", "阈值：时间窗口", "hours"),
    "max_age_days": ("policy: longest PIN age", "政策：密码最长使用期限", "days"),
    "history_size": (
        "policy: differ from the last (PINs)",
        "政策：不得与最近几个密码相同",
        "count",
    ),
    "tolerance_fen": ("policy: tolerance", "阈值：容差", "money"),
    "refund_window_days": ("policy: refund window", "政策：退款期限", "days"),
    "grace_minutes": ("policy: grace after closing", "阈值：打烊后宽限", "minutes"),
    "min_refunds": ("policy: fewest refunds", "阈值：最少退款笔数", "count"),
    "min_refunds_to_other_card": (
        "policy: fewest refunds to another card",
        "阈值：最少退至他卡笔数",
        "count",
    ),
    "round_unit_fen": ("policy: round unit", "阈值：整数单位", "money"),
    "min_amount_fen": ("policy: smallest amount", "阈值：最小金额", "money"),
    "top_fraction": (
        "policy: share of operator-days reported",
        "阈值：报告的操作员日比例",
        "share",
    ),
    "min_anomaly_score": ("policy: lowest anomaly score", "阈值：最低异常分", "score"),
    "lead_anomaly_score": (
        "policy: lowest score of a day without repeat-card refunds",
        "阈值：无重复卡退款日的最低异常分",
        "score",
    ),
    "medium_repeat_refunds": (
        "policy: refunds to repeat cards for medium",
        "阈值：评为“中”的重复卡退款笔数",
        "count",
    ),
    "seed": ("model seed", "模型随机种子", "text"),
    # fees and completeness
    "fee_kind": ("looks like", "疑似原因", "fee_kind"),
    "fee_class": ("merchant fee class", "商户费率类别", "fee_class"),
    "records": ("records", "记录笔数", "count"),
    "charged_fen": ("fees charged", "实收手续费", "money"),
    "expected_fen": ("fees by the fee table", "按费率表应收手续费", "money"),
    "difference_fen": ("not collected (expected minus charged)", "少收金额（应收减实收）", "money"),
    "txn_ids": ("records", "交易编号", "text"),
    "txn_id": ("record", "交易编号", "text"),
    "duplicate_of_txn_id": ("repeats sale", "重复的原交易", "text"),
    "card_token": ("card", "卡标记", "text"),
    "gap_seconds": ("seconds after it", "间隔秒数", "number"),
    "trace_no": ("trace number", "流水号", "text"),
    "previous_trace_no": ("trace number of the earlier sale", "原交易流水号", "text"),
    "batch_no": ("batch", "批次号", "text"),
    "missing_traces": ("trace numbers missing", "缺失的流水号数", "count"),
    "lowest_trace_no": ("lowest trace number", "最小流水号", "text"),
    "highest_trace_no": ("highest trace number", "最大流水号", "text"),
    "counted_records": ("approved records the terminal counted", "终端汇总的已批准笔数", "count"),
    "recorded_records": ("approved records in the data", "数据中的已批准笔数", "count"),
    "counted_sale_amount_fen": ("sales the terminal counted", "终端汇总的消费金额", "money"),
    "recorded_sale_amount_fen": ("sales in the data", "数据中的消费金额", "money"),
    "missing_sale_amount_fen": ("sales missing from the data", "数据中缺少的消费金额", "money"),
    "missing_fee_fen": ("fees missing from the data", "数据中缺少的手续费", "money"),
    "min_difference_fen": ("policy: smallest difference", "阈值：最小差额", "money"),
    "max_gap_seconds": ("policy: longest gap (seconds)", "阈值：最长间隔（秒）", "number"),
    "max_missing": ("policy: most numbers a batch may miss", "阈值：批次最多缺失号数", "count"),
    # privilege audit
    "grant_event_id": ("grant event", "授权事件编号", "text"),
    "granted_by": ("granted by", "授权人", "set_by"),
    "granted_by_operator_id": ("granting operator", "授权操作员", "text"),
    "granted_at": ("granted", "授权时间", "stamp"),
    "first_refund_at": ("first refund", "首笔退款时间", "stamp"),
    "hours_to_use": ("grant to first refund", "授权至首笔退款", "hours"),
    "max_hours": ("policy: longest time", "阈值：最长时间", "hours"),
    "reset_at": ("PIN reset", "密码重置时间", "stamp"),
    "asked_within_minutes": (
        "policy: failed login before the reset",
        "阈值：重置前登录失败的时间",
        "minutes",
    ),
    "can_manage": ("operator may manage", "操作员有管理权限", "bool"),
    "added_at": ("account added", "账户添加时间", "stamp"),
    "idle_since": ("no login since", "自此未登录", "stamp"),
    "idle_days": ("days without a login", "未登录天数", "days"),
    "terminal_logins": ("logins by the terminal's others", "同终端其他人登录次数", "count"),
    "terminal_operators": ("others who logged in", "登录过的其他操作员", "count"),
    "expected_logins": ("the clerk's fair share of logins", "该操作员应有登录次数", "number"),
    "min_expected_logins": ("policy: fewest expected logins", "阈值：最少应有登录次数", "count"),
    "family": ("terminal family", "终端型号类别", "terminal_family"),
    "is_privileged": (
        "operator may refund, transfer or manage",
        "操作员有退款、转账或管理权限",
        "bool",
    ),
    # sales patterns
    "sale_txn_ids": ("sales", "销售交易", "text"),
    "sales": ("sales", "消费笔数", "count"),
    "largest_fen": ("largest sale", "单笔最大金额", "money"),
    "declined_txn_ids": ("declined sales", "被拒销售", "text"),
    "declines": ("declined sales", "被拒笔数", "count"),
    "cards": ("distinct cards", "不同卡数", "count"),
    "retried": ("paid again on the same card", "同卡重新付款笔数", "count"),
    "max_retried_share": (
        "policy: largest share paid again",
        "阈值：同卡重新付款的最大比例",
        "share",
    ),
    "retry_minutes": ("policy: paying again within", "阈值：重新付款时限", "minutes"),
    "baseline_days": ("policy: usual sale over the days before", "阈值：平时销售取前几天", "days"),
    "median_amount_fen": ("median declined amount", "被拒金额中位数", "money"),
    "average_sale_fen": (
        "usual sale (the week before and the day's other hours)",
        "平时销售平均金额（前一周及当日其他时段）",
        "money",
    ),
    "decline_reasons": ("decline reasons", "拒绝原因", "decline_reason"),
    "void_txn_ids": ("voids", "撤销交易", "text"),
    "voids": ("late voids", "事后撤销笔数", "count"),
    "voided_fen": ("voided", "撤销金额", "money"),
    "shortest_delay_minutes": (
        "shortest time from sale to void",
        "销售至撤销的最短间隔",
        "minutes",
    ),
    "peer_late_voids": (
        "late voids by the merchant's other operators that day",
        "本商户其他操作员当日事后撤销笔数",
        "count",
    ),
    "min_sales": ("policy: fewest sales", "阈值：最少消费笔数", "count"),
    "min_declines": ("policy: fewest declined sales", "阈值：最少被拒笔数", "count"),
    "min_cards": ("policy: fewest distinct cards", "阈值：最少不同卡数", "count"),
    "max_amount_share": (
        "policy: largest median declined amount (share of the average sale)",
        "阈值：被拒金额中位数占平均销售的最大比例",
        "share",
    ),
    "late_void_minutes": (
        "policy: a void this late is late",
        "阈值：事后撤销的最短间隔",
        "minutes",
    ),
    "min_late_voids": ("policy: fewest late voids in a day", "阈值：每日最少事后撤销笔数", "count"),
    "correction_minutes": (
        "policy: a re-sale this soon makes a correction",
        "阈值：视为更正的重新收款时限",
        "minutes",
    ),
    # merchant typologies
    "days": ("days flagged", "异常天数", "count"),
    "cash_amount_fen": ("amount of those sales", "此类消费金额", "money"),
    "odd_hour_sales": ("at the category's odd hours", "发生在同行业异常时段的笔数", "count"),
    "category": ("registered category", "登记行业", "category"),
    "odd_hours": ("the category's odd hours", "同行业异常时段", "text"),
    "behaves_as": ("sells like", "交易特征接近", "category"),
    "shift_percent": ("shift toward it (%)", "偏移比例（%）", "number"),
    "distance": ("distance (typical distances)", "偏离程度（典型距离倍数）", "number"),
    "silent_days": ("days silent", "沉寂天数", "days"),
    "wake_day": ("back on", "恢复交易日", "text"),
    "daily_sales": ("sales a day since (median)", "恢复后日均消费笔数（中位数）", "count"),
    "daily_fen": ("amount a day since (median)", "恢复后日均金额（中位数）", "money"),
    "before_sales": ("sales a day before", "沉寂前日均消费笔数", "number"),
    "jump": ("times its earlier sales", "为此前的倍数", "number"),
    "top_sales": (
        "busiest tenth of the category from (sales)",
        "同行业前十分之一门槛（笔）",
        "number",
    ),
    "odd_hour_percent": (
        "policy: odd below (% of the category)",
        "阈值：异常时段占比上限（%）",
        "number",
    ),
    "min_shift_percent": ("policy: least shift (%)", "阈值：最小偏移比例（%）", "number"),
    "min_spread_multiple": ("policy: least distance", "阈值：最小偏离倍数", "number"),
    "mad": (
        "MAD from Benford (first two digits)",
        "与本福特定律的平均绝对偏差（前两位）",
        "number",
    ),
    "peer_mad": ("MAD from the category", "与同行业的平均绝对偏差", "number"),
    "chi_square": ("chi-square against the category", "相对同行业的卡方值", "number"),
    "chi_z": ("chi-square as a normal deviate", "卡方值折算的标准正态偏差", "number"),
    "spikes": ("digits found too often", "出现过多的前两位数字", "text"),
    "max_mad": ("policy: largest MAD that conforms", "阈值：符合的最大平均绝对偏差", "number"),
    "min_z": ("policy: least deviate", "阈值：最小偏差", "number"),
    "under_round_percent": (
        "excess just under round sums (%)",
        "超出部分中略低于整数金额的比例（%）",
        "number",
    ),
    "min_under_percent": (
        "policy: least excess under round sums (%)",
        "阈值：略低于整数金额的最小比例（%）",
        "number",
    ),
    "min_silent_days": ("policy: fewest days silent", "阈值：最少沉寂天数", "days"),
    "min_jump": ("policy: least multiple", "阈值：最小倍数", "number"),
    "top_percent": ("policy: busiest share (%)", "阈值：前列比例（%）", "number"),
}
_LOCKOUT_REASONS: Final[dict[str, tuple[str, str]]] = {
    "never_locks": ("never locks", "从不锁定"),
    "locks_after_too_many": ("locks after too many wrong PINs", "允许输错次数过多"),
    "locks_too_briefly": ("locks too briefly", "锁定时间过短"),
    "failures_without_lockout": ("wrong PINs without a lockout", "连续输错未锁定"),
}
_REASONS: Final[dict[str, tuple[str, str]]] = {
    "no_refund_permission": ("no refund permission", "无退款权限"),
    "operator_disabled": ("operator disabled", "操作员已停用"),
    "unknown_operator": ("no such operator", "无此操作员"),
}
_ENUMS: Final[dict[str, dict[str, tuple[str, str]]]] = {
    "set_kind": {
        "initial": ("initial setting", "初始设置"),
        "change": ("change", "修改"),
        "reset": ("reset", "重置"),
    },
    "set_by": _SET_BY,
    "reason": _REASONS,
    "unlock": {
        "timeout": ("timed out", "超时自动解除"),
        "admin": ("by the administrator", "由管理员解除"),
        "service_desk": ("by the service desk", "由服务台解除"),
    },
    "weakness": WEAKNESS_CLASSES,
    "lockout_reasons": _LOCKOUT_REASONS,
    "features": FEATURES,
    # credential_sharing's two views: switching between terminals, or turns on one till
    "sharing_view": {
        "terminals": ("two terminals in turn", "两台终端交替"),
        "till": ("one till, in turn with another login", "同一终端与另一登录交替"),
    },
    # fees and completeness
    "fee_kind": ledger.FEE_KINDS,
    "terminal_family": privileges.FAMILY_WORDS,
    # card_testing's decline reasons, as the store names them
    "decline_reason": {
        "insufficient_funds": ("insufficient funds", "余额不足"),
        "card_expired": ("card expired", "卡已过期"),
        "issuer_unavailable": ("issuer unavailable", "发卡行无法连接"),
    },
    "category": merchants.CATEGORY_WORDS,
    "fee_class": merchants.FEE_CLASS_WORDS,
}
EVIDENCE_LIST_ITEMS: Final = 6


def evidence_label(key: str, lang: Language) -> str | None:
    """An evidence key's label in ``lang``; None for a key with none."""
    if key in EVIDENCE:
        return _pick(EVIDENCE[key][:2], lang)  # type: ignore[arg-type]
    if key in FEATURES:
        return label(FEATURES, key, lang)
    return None


def _evidence_kind(key: str) -> EvidenceKind:
    if key in EVIDENCE:
        return EVIDENCE[key][2]
    if key.endswith("_fen"):
        return "money"
    if key in _SHARE_FEATURES:
        return "share"
    return "number"


def _unit(value: str, en: str, zh: str, lang: Language) -> str:
    return f"{value} {en}" if lang == "en" else f"{value} {zh}"


def evidence_value(key: str, value: Any, lang: Language) -> str:
    """An evidence value as the report shows it: one format per kind, in both languages."""
    if value is None:
        return "—"
    kind = _evidence_kind(key)
    if isinstance(value, list):
        if not value:
            return "—"
        items = [evidence_value(key, v, lang) for v in value[:EVIDENCE_LIST_ITEMS]]
        more = len(value) - EVIDENCE_LIST_ITEMS
        joined = (", " if lang == "en" else "、").join(items)
        return joined + (f" … (+{_n(more)})" if more > 0 else "")
    if isinstance(value, bool) or kind == "bool":
        return text("yes" if value else "no", lang)
    if kind in _ENUMS:
        return label(_ENUMS[kind], str(value), lang)
    if kind == "money":
        return _money(value, lang)
    if kind == "count":
        return _n(value)
    if kind == "days":
        shown = _n(value) if float(value) == int(float(value)) else _decimal(value)
        return _unit(shown, "days" if shown != "1" else "day", "天", lang)
    if kind == "minutes":
        shown = _n(round(float(value)))
        return _unit(shown, "minutes" if shown != "1" else "minute", "分钟", lang)
    if kind == "hours":
        shown = _n(value) if float(value) == int(float(value)) else _decimal(value)
        return _unit(shown, "hours" if shown != "1" else "hour", "小时", lang)
    if kind == "share":
        return f"{float(value) * 100:,.1f}%"
    if kind == "percentile":
        return _share(value)
    if kind == "score":
        return f"{float(value):.2f}"
    if kind == "stamp":
        return _minute(str(value))
    if kind == "number" and isinstance(value, int | float):
        return _n(value) if float(value) == int(value) else _decimal(value)
    return str(value)


def evidence_items(evidence: dict[str, Any], lang: Language) -> list[tuple[str, str]]:
    """Each evidence entry as (label, value) in ``lang``; a key without a label shows as is,
    a key without a value (an open state's end) not at all."""
    return [
        (evidence_label(key, lang) or key, evidence_value(key, value, lang))
        for key, value in evidence.items()
        if value is not None
    ]
