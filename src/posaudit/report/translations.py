# ruff: noqa: E501  (sentences and their Chinese counterparts read best whole, one per line)
"""Every word the report shows, in English and Chinese, and each rule's finding sentence.

Findings carry an English ``summary``; a Chinese report, and a report whose operators are
masked, renders each finding's sentence again from its rule, its columns and its evidence
JSON with the templates below (one per rule and language). A rule without a template, or
whose evidence lacks a key its template needs, falls back to the English summary (masked
when the report masks operators): :func:`finding_sentence` returns ``None`` then.

Keep the templates in step with the rules' evidence: ``tests/report/test_report_translations.py``
renders every finding of the sample run in both languages and fails on any fallback.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from posaudit.report.pseudonyms import Pseudonyms

Language = Literal["en", "zh"]
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
    "merchant_id": ("Merchant ID", "商户编号"),
    "merchant_name": ("Merchant name", "商户名称"),
    "entity_id": ("Entity ID", "对象编号"),
    "operator_label": ("Operator", "操作员"),
    "status": ("Status", "状态"),
}

SEVERITY_GLOSSARY: Final[dict[str, tuple[str, str]]] = {
    "critical": (
        "Act today: an attack or loss that is happening or succeeded.",
        "需立即处理：正在发生或已经得手的攻击或损失。",
    ),
    "high": (
        "Act this week: a clear breach of policy or a likely fraud.",
        "需本周处理：明显违反政策或很可能存在舞弊。",
    ),
    "medium": (
        "Plan a fix: a weakness an attacker can use.",
        "需安排整改：可被攻击者利用的薄弱环节。",
    ),
    "low": ("Note: a weakness of little immediate risk.", "备注：短期风险较小的薄弱环节。"),
    "info": (
        "Health note: accuses nobody (e.g. a terminal's bad network).",
        "运行状况提示：不指向任何人（例如终端网络不佳）。",
    ),
}

FAMILIES: Final[dict[str, tuple[str, str]]] = {
    "logins": ("Logins and lockouts", "登录与锁定"),
    "pins": ("Operator PINs", "操作员密码"),
    "refunds": ("Refunds", "退款"),
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
    "refunds": (
        "Refunds that break the refund rules, and refund patterns that look like cash-out.",
        "违反退款规则的退款，以及疑似套现的退款模式。",
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
}
PARAMETERS: Final[dict[str, tuple[str, str]]] = {
    "min_failures": ("fewest failed attempts", "最少失败次数"),
    "max_gap_minutes": ("longest gap inside one burst (minutes)", "同一批次内最长间隔（分钟）"),
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
    "window_minutes": ("window (minutes)", "时间窗口（分钟）"),
    "min_errors": ("fewest network errors", "最少网络错误次数"),
    "max_age_days": ("longest PIN age (days)", "密码最长使用天数"),
    "history_size": ("previous PINs a new PIN must differ from", "新密码不得与之前几个相同"),
    "tolerance_fen": ("tolerance (fen)", "容差（分）"),
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
    "seed": ("random seed of the model", "模型随机种子"),
    "n_estimators": ("trees in the forest", "森林中的树数量"),
    "max_samples": ("sample size per tree", "每棵树的样本量"),
    "fit_rows": ("most operator-days the forest is fitted on", "拟合森林所用的最多操作员日数"),
}
WEAKNESS_CLASSES: Final[dict[str, tuple[str, str]]] = {
    "repeated_digit": ("repeated digit", "重复数字"),
    "ascending_run": ("ascending run", "升序连续数字"),
    "descending_run": ("descending run", "降序连续数字"),
    "repeated_pair": ("repeated pair", "两位重复"),
    "repeated_triple": ("repeated triple", "三位重复"),
    "tripled_digits": ("two triples", "两组三连"),
    "mirrored": ("mirrored halves", "前后对称"),
    "doubled_digits": ("doubled digits", "成对数字"),
    "near_run": ("near-run", "近似连续数字"),
    "counting": ("counting sequence", "等差计数"),
    "keypad_shape": ("keypad shape", "键盘图形"),
    "famous_number": ("famous number", "著名数字"),
    "lucky_number": ("lucky number", "吉利数字"),
    "date": ("date", "日期"),
    "common_pin": ("common PIN", "常见密码"),
    "operator_number": ("operator number inside the PIN", "包含操作员编号"),
}
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
_SET_BY: Final[dict[str, tuple[str, str]]] = {
    "self": ("the operator", "操作员本人"),
    "admin": ("the administrator", "管理员"),
    "service_desk": ("the service desk", "服务台"),
    "acquirer": ("the acquirer", "收单机构"),
}
_SET_KIND: Final[dict[str, tuple[str, str]]] = {
    "initial": ("initial setting", "初始设置"),
    "change": ("change", "修改"),
    "reset": ("reset", "重置"),
}
_UNLOCK: Final[dict[str, tuple[str, str]]] = {
    "timeout": ("by timeout", "超时自动解除"),
    "admin": ("by the administrator", "由管理员解除"),
    "service_desk": ("by the service desk", "由服务台解除"),
}


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


@dataclass(frozen=True)
class FindingFacts:
    """What a sentence template may use: one finding's columns, its evidence, and labels."""

    rule: str
    entity_type: str
    entity_id: str
    merchant_id: str | None
    window_start: datetime
    window_end: datetime
    evidence: dict[str, Any]
    role: str | None  # the role of the operator the finding is about, when it is about one
    pseudonyms: Pseudonyms

    def ev(self, key: str) -> Any:
        """An evidence value; a missing key makes the template fall back (KeyError)."""
        return self.evidence[key]

    def operator_id(self) -> str | None:
        if self.entity_type == "operator":
            return self.entity_id
        value = self.evidence.get("operator_id")
        return str(value) if value is not None else None

    def terminal_id(self) -> str | None:
        if self.entity_type == "terminal":
            return self.entity_id
        for key in ("terminal_id", "home_terminal_id"):
            if self.evidence.get(key):
                return str(self.evidence[key])
        operator = self.operator_id()
        if operator and "-" in operator:
            return operator.rsplit("-", 1)[0]
        return None


def _number(operator_id: str) -> str:
    return operator_id.rsplit("-", 1)[1] if "-" in operator_id else operator_id


def _home_terminal(operator_id: str) -> str | None:
    return operator_id.rsplit("-", 1)[0] if "-" in operator_id else None


def _who(
    f: FindingFacts, lang: Language, *, merchant: bool = False, operator_id: str | None = None
) -> str:
    """The operator a finding is about, as a sentence names it.

    An operator is known by its number at its home terminal (its id is ``T…-NN``), in both
    languages; a terminal it worked on that day is named apart, where the sentence says so.
    """
    operator = operator_id or f.operator_id()
    if operator is None:
        raise KeyError("operator_id")
    terminal = _home_terminal(operator) or f.terminal_id() or "?"
    admin = f.role == "admin" and operator_id is None
    if f.pseudonyms.enabled:
        name = f.pseudonyms.operator(operator)
        if lang == "en":
            role = "administrator" if admin else "operator"
            where = f" of merchant {f.merchant_id}" if merchant and f.merchant_id else ""
            return f"{role} {name} at terminal {terminal}{where}"
        where = f"商户 {f.merchant_id} " if merchant and f.merchant_id else ""
        return f"{where}终端 {terminal} 的{'管理员' if admin else '操作员'} {name}"
    number = _number(operator)
    if lang == "en":
        role = "administrator" if admin else "operator"
        where = f" of merchant {f.merchant_id}" if merchant and f.merchant_id else ""
        return f"{role} {number} at terminal {terminal}{where}"
    where = f"商户 {f.merchant_id} " if merchant and f.merchant_id else ""
    return f"{where}终端 {terminal} 的 {number} 号{'管理员' if admin else '操作员'}"


def _worked_on(f: FindingFacts, lang: Language, operator_id: str | None = None) -> str:
    """' (working on terminal T…)' when the evidence's terminal is not the operator's home one."""
    operator = operator_id or f.operator_id()
    worked = f.evidence.get("terminal_id")
    if not worked or not operator or worked == _home_terminal(operator):
        return ""
    return f" (working on terminal {worked})" if lang == "en" else f"在终端 {worked} 上"


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


def _date(value: datetime | str) -> str:
    return (value if isinstance(value, str) else value.strftime("%Y-%m-%d"))[:10]


def _clock(value: datetime) -> str:
    return value.strftime("%H:%M")


def _minute(value: datetime | str) -> str:
    if isinstance(value, str):
        return value.replace("T", " ")[:16]
    return value.strftime("%Y-%m-%d %H:%M")


def _minutes(f: FindingFacts) -> int:
    return max(1, math.ceil((f.window_end - f.window_start).total_seconds() / 60))


def _plural(n: int | float | str, one: str, many: str) -> str:
    return f"{_n(n)} {one if int(n) == 1 else many}"


def _span(f: FindingFacts, lang: Language) -> str:
    """The finding's window in whole minutes: '1 minute', '42 minutes' / '42 分钟'."""
    return _plural(_minutes(f), "minute", "minutes") if lang == "en" else f"{_n(_minutes(f))} 分钟"


def _join(items: Sequence[str], lang: Language) -> str:
    items = list(items)
    if lang == "zh":
        return "、".join(items)
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _numbers(f: FindingFacts, key: str) -> list[str]:
    terminal = f.terminal_id()
    return [f.pseudonyms.number(terminal, str(n)) for n in f.ev(key)]


def _lockout_setting(f: FindingFacts, lang: Language) -> str:
    threshold, minutes = f.evidence.get("lockout_threshold"), f.evidence.get("lockout_minutes")
    if threshold is None:
        return "the terminal never locks" if lang == "en" else "该终端从不锁定"
    if lang == "en":
        return f"the terminal locks after {_n(threshold)} wrong PINs for {_n(minutes)} minutes"
    return f"该终端输错 {_n(threshold)} 次后锁定 {_n(minutes)} 分钟"


# Each template takes the finding's facts and returns its sentence; a KeyError (missing
# evidence) makes the caller fall back to the English summary.
Template = Callable[[FindingFacts], str]


def _pin_brute_force_en(f: FindingFacts) -> str:
    lockouts, locked = int(f.ev("lockouts")), int(f.ev("locked_attempts"))
    text_ = (
        f"{_who(f, 'en')} had {_plural(f.ev('wrong_attempts'), 'wrong PIN', 'wrong PINs')} in "
        f"{_span(f, 'en')} on {_date(f.window_start)} from {_clock(f.window_start)}"
    )
    text_ += (
        f", was locked out {_plural(lockouts, 'time', 'times')}"
        if lockouts
        else ", was never locked out"
    )
    if locked:
        text_ += f" and tried {_plural(locked, 'more time', 'more times')} while locked"
    text_ += f" ({_lockout_setting(f, 'en')})"
    return text_ + (
        f", then got in at {_clock(f.window_end)}"
        if f.ev("ended_in_success")
        else ", and did not get in"
    )


def _pin_brute_force_zh(f: FindingFacts) -> str:
    lockouts, locked = int(f.ev("lockouts")), int(f.ev("locked_attempts"))
    text_ = (
        f"{_who(f, 'zh')}于 {_date(f.window_start)} {_clock(f.window_start)} 起的 {_span(f, 'zh')}内"
        f"输错密码 {_n(f.ev('wrong_attempts'))} 次，"
    )
    text_ += f"被锁定 {_n(lockouts)} 次" if lockouts else "一次也未被锁定"
    if locked:
        text_ += f"，锁定期间又尝试 {_n(locked)} 次"
    text_ += f"（{_lockout_setting(f, 'zh')}）"
    return text_ + (
        f"，随后于 {_clock(f.window_end)} 登录成功"
        if f.ev("ended_in_success")
        else "，最终未能登录"
    )


def _operator_enumeration_en(f: FindingFacts) -> str:
    return (
        f"terminal {f.entity_id} was tried with {_n(f.ev('operator_numbers'))} operator numbers "
        f"({_n(f.ev('unknown_numbers'))} unknown) in {_plural(f.ev('attempts'), 'failed login', 'failed logins')} "
        f"over {_span(f, 'en')} on {_date(f.window_start)} from {_clock(f.window_start)}"
    )


def _operator_enumeration_zh(f: FindingFacts) -> str:
    return (
        f"终端 {f.entity_id} 于 {_date(f.window_start)} {_clock(f.window_start)} 起的 {_span(f, 'zh')}内"
        f"被尝试了 {_n(f.ev('operator_numbers'))} 个操作员编号（其中 {_n(f.ev('unknown_numbers'))} 个不存在），"
        f"登录失败共 {_n(f.ev('attempts'))} 次"
    )


def _lockout_storm_en(f: FindingFacts) -> str:
    return (
        f"terminal {f.entity_id} locked out {_n(f.ev('operators'))} operators ({', '.join(_numbers(f, 'operator_nos'))}) "
        f"{_plural(f.ev('lockouts'), 'time', 'times')} in {_span(f, 'en')} on {_date(f.window_start)} "
        f"from {_clock(f.window_start)}"
    )


def _lockout_storm_zh(f: FindingFacts) -> str:
    return (
        f"终端 {f.entity_id} 于 {_date(f.window_start)} {_clock(f.window_start)} 起的 {_span(f, 'zh')}内"
        f"有 {_n(f.ev('operators'))} 名操作员（{'、'.join(_numbers(f, 'operator_nos'))}）被锁定，共 {_n(f.ev('lockouts'))} 次"
    )


def _setting_parts(f: FindingFacts, lang: Language) -> list[str]:
    threshold, minutes = f.evidence.get("lockout_threshold"), f.evidence.get("lockout_minutes")
    max_failures, min_minutes = int(f.ev("max_failures")), int(f.ev("min_lockout_minutes"))
    parts = []
    if threshold is None:
        parts.append("never locks an operator" if lang == "en" else "从不锁定操作员")
    else:
        late = int(threshold) > max_failures
        brief = minutes is not None and int(minutes) < min_minutes
        if late and brief:
            parts.append(
                f"locks only after {_n(threshold)} wrong PINs and only for {_n(minutes)} minutes"
                if lang == "en"
                else f"输错 {_n(threshold)} 次才锁定，且只锁定 {_n(minutes)} 分钟"
            )
        elif late:
            parts.append(
                f"locks only after {_n(threshold)} wrong PINs"
                if lang == "en"
                else f"输错 {_n(threshold)} 次才锁定"
            )
        elif brief:
            parts.append(
                f"locks for only {_n(minutes)} minutes"
                if lang == "en"
                else f"只锁定 {_n(minutes)} 分钟"
            )
    runs, longest = int(f.ev("runs_without_lockout")), int(f.ev("longest_run"))
    if runs:
        parts.append(
            f"had {_plural(runs, 'run', 'runs')} of wrong PINs without a lockout, the longest {_n(longest)} in a row"
            if lang == "en"
            else f"有 {_n(runs)} 轮连续输错未触发锁定，最长一轮连续输错 {_n(longest)} 次"
        )
    return parts


def _lockout_not_enforced_en(f: FindingFacts) -> str:
    return (
        f"terminal {f.entity_id} {', and '.join(_setting_parts(f, 'en'))}; policy locks after at most "
        f"{_n(f.ev('max_failures'))} wrong PINs for at least {_n(f.ev('min_lockout_minutes'))} minutes"
    )


def _lockout_not_enforced_zh(f: FindingFacts) -> str:
    return (
        f"终端 {f.entity_id} {'，并且'.join(_setting_parts(f, 'zh'))}；政策要求最多输错 {_n(f.ev('max_failures'))} 次即锁定，"
        f"且锁定至少 {_n(f.ev('min_lockout_minutes'))} 分钟"
    )


def _credential_sharing_en(f: FindingFacts) -> str:
    return (
        f"{_who(f, 'en')} was active on terminals {_join(f.ev('terminal_ids'), 'en')} in turn on "
        f"{_date(f.window_start)} from {_clock(f.window_start)} to {_clock(f.window_end)}, switching "
        f"{_plural(f.ev('switches'), 'time', 'times')} with at most {_n(f.ev('max_gap_minutes'))} minutes between terminals"
    )


def _credential_sharing_zh(f: FindingFacts) -> str:
    return (
        f"{_who(f, 'zh')}于 {_date(f.window_start)} {_clock(f.window_start)} 至 {_clock(f.window_end)} "
        f"在终端 {_join(f.ev('terminal_ids'), 'zh')} 之间交替登录使用，切换 {_n(f.ev('switches'))} 次，"
        f"每次间隔不超过 {_n(f.ev('max_gap_minutes'))} 分钟"
    )


def _network_failure_burst_en(f: FindingFacts) -> str:
    return (
        f"terminal {f.entity_id} could not reach the host {_plural(f.ev('network_errors'), 'time', 'times')} "
        f"in {_span(f, 'en')} on {_date(f.window_start)} from {_clock(f.window_start)}; check its network "
        "(these are not wrong PINs)"
    )


def _network_failure_burst_zh(f: FindingFacts) -> str:
    return (
        f"终端 {f.entity_id} 于 {_date(f.window_start)} {_clock(f.window_start)} 起的 {_span(f, 'zh')}内"
        f"有 {_n(f.ev('network_errors'))} 次无法连接主机；请检查其网络（这些不是密码错误）"
    )


def _weak_pins_en(f: FindingFacts) -> str:
    weakness = label(WEAKNESS_CLASSES, str(f.ev("weakness_class")), "en")
    since, until = _date(f.ev("set_at")), _date(f.ev("held_until"))
    if f.ev("still_held"):
        return (
            f"{_who(f, 'en', merchant=True)} has held a weak PIN ({weakness}) since {since} and still "
            f"held it on {until}; have it changed"
        )
    return f"{_who(f, 'en', merchant=True)} held a weak PIN ({weakness}) from {since} to {until}"


def _weak_pins_zh(f: FindingFacts) -> str:
    weakness = label(WEAKNESS_CLASSES, str(f.ev("weakness_class")), "zh")
    since, until = _date(f.ev("set_at")), _date(f.ev("held_until"))
    if f.ev("still_held"):
        return (
            f"{_who(f, 'zh', merchant=True)}自 {since} 起使用弱密码（{weakness}），至 {until} 仍在使用；"
            "应立即更换"
        )
    return f"{_who(f, 'zh', merchant=True)}在 {since} 至 {until} 期间使用弱密码（{weakness}）"


def _default_pins_en(f: FindingFacts) -> str:
    days = _plural(f.ev("held_days"), "day", "days")
    if f.ev("still_held"):
        return (
            f"{_who(f, 'en', merchant=True)} still holds the acquirer's default PIN, set on "
            f"{_date(f.ev('set_at'))} and never changed in {days} up to {_date(f.ev('held_until'))}; "
            "have it changed now"
        )
    return (
        f"{_who(f, 'en', merchant=True)} held the acquirer's default PIN, set on {_date(f.ev('set_at'))}, "
        f"for {days} until {_date(f.ev('held_until'))}"
    )


def _default_pins_zh(f: FindingFacts) -> str:
    days = _n(f.ev("held_days"))
    if f.ev("still_held"):
        return (
            f"{_who(f, 'zh', merchant=True)}仍在使用收单机构的默认密码：自 {_date(f.ev('set_at'))} 设置后，"
            f"至 {_date(f.ev('held_until'))} 已有 {days} 天未更改；应立即更换"
        )
    return (
        f"{_who(f, 'zh', merchant=True)}曾使用收单机构的默认密码：自 {_date(f.ev('set_at'))} 设置后"
        f"使用 {days} 天，至 {_date(f.ev('held_until'))} 才更改"
    )


def _pin_age_days(f: FindingFacts) -> int:
    """Whole days a PIN was held, as the rule counts them (``held_days``; older findings
    carry only ``age_days``, whose whole part is the same count)."""
    held = f.evidence.get("held_days")
    return int(held) if held is not None else math.floor(float(f.ev("age_days")))


def _stale_pins_en(f: FindingFacts) -> str:
    days = _plural(_pin_age_days(f), "day", "days")
    limit = f"{_n(f.ev('max_age_days'))}-day limit"
    if f.ev("still_held"):
        return (
            f"{_who(f, 'en', merchant=True)} has not changed their PIN since {_date(f.ev('set_at'))}: "
            f"{days} old on {_date(f.ev('held_until'))}, over the {limit} since {_date(f.window_start)}"
        )
    return (
        f"{_who(f, 'en', merchant=True)} kept the PIN set on {_date(f.ev('set_at'))} for {days}, until "
        f"{_date(f.ev('held_until'))}, over the {limit} since {_date(f.window_start)}"
    )


def _stale_pins_zh(f: FindingFacts) -> str:
    days = _n(_pin_age_days(f))
    limit = f"{_n(f.ev('max_age_days'))} 天的期限"
    if f.ev("still_held"):
        return (
            f"{_who(f, 'zh', merchant=True)}自 {_date(f.ev('set_at'))} 起未更换密码：至 {_date(f.ev('held_until'))} "
            f"已使用 {days} 天，自 {_date(f.window_start)} 起超出 {limit}"
        )
    return (
        f"{_who(f, 'zh', merchant=True)}于 {_date(f.ev('set_at'))} 设置的密码一直用到 {_date(f.ev('held_until'))}，"
        f"共 {days} 天，自 {_date(f.window_start)} 起超出 {limit}"
    )


def _others(f: FindingFacts, lang: Language) -> str:
    others = []
    for operator in f.ev("other_operator_ids"):
        terminal = _home_terminal(operator) or "?"
        if f.pseudonyms.enabled:
            name = f.pseudonyms.operator(operator)
            others.append(
                f"operator {name} at {terminal}"
                if lang == "en"
                else f"终端 {terminal} 的操作员 {name}"
            )
        else:
            number = _number(operator)
            others.append(
                f"operator {number} at {terminal}"
                if lang == "en"
                else f"终端 {terminal} 的 {number} 号操作员"
            )
    return ", ".join(others) if lang == "en" else "、".join(others)


def _shared_pins_en(f: FindingFacts) -> str:
    n = len(f.ev("other_operator_ids"))
    return (
        f"{_who(f, 'en', merchant=True)} held the same PIN as {_plural(n, 'other operator', 'other operators')} of the "
        f"merchant ({_others(f, 'en')}) from {_date(f.ev('shared_from'))} to {_date(f.ev('shared_until'))}; "
        "their actions cannot be told apart"
    )


def _shared_pins_zh(f: FindingFacts) -> str:
    n = len(f.ev("other_operator_ids"))
    return (
        f"{_who(f, 'zh', merchant=True)}在 {_date(f.ev('shared_from'))} 至 {_date(f.ev('shared_until'))} 期间与本商户"
        f"另外 {_n(n)} 名操作员（{_others(f, 'zh')}）使用相同的密码，无法分清各笔操作由谁完成"
    )


def _pins_back(f: FindingFacts, lang: Language) -> str:
    back = int(f.ev("pins_back"))
    if lang == "en":
        return "the PIN it replaced" if back == 1 else f"{_n(back)} PINs back"
    return "即刚被替换的密码" if back == 1 else f"往前数第 {_n(back)} 个"


def _reused_pins_en(f: FindingFacts) -> str:
    kind = "a reset" if f.ev("set_kind") == "reset" else "a change"
    by = label(_SET_BY, str(f.ev("set_by")), "en")
    return (
        f"{_who(f, 'en', merchant=True)} went back on {_date(f.ev('set_at'))}, through {kind} made by {by}, "
        f"to a PIN they already held from {_date(f.ev('earlier_set_at'))} ({_pins_back(f, 'en')}; policy: none of "
        f"the last {_n(f.ev('history_size'))})"
    )


def _reused_pins_zh(f: FindingFacts) -> str:
    kind = label(_SET_KIND, str(f.ev("set_kind")), "zh")
    by = label(_SET_BY, str(f.ev("set_by")), "zh")
    return (
        f"{_who(f, 'zh', merchant=True)}于 {_date(f.ev('set_at'))} 经{by}{kind}密码后，又改回了自 "
        f"{_date(f.ev('earlier_set_at'))} 起用过的旧密码（{_pins_back(f, 'zh')}；政策要求新密码不得与最近 "
        f"{_n(f.ev('history_size'))} 个相同）"
    )


def _refund_en(f: FindingFacts) -> str:
    """'refund X of 27.46 CNY on 2026-09-01 06:58 by operator 03 at terminal T (on terminal U)'."""
    operator = str(f.ev("operator_id"))
    return (
        f"refund {f.ev('refund_txn_id')} of {_money(f.ev('amount_fen'), 'en')} on {_minute(f.window_start)} "
        f"by {_who(f, 'en', operator_id=operator)}{_worked_on(f, 'en', operator)}"
    )


def _refund_zh(f: FindingFacts) -> str:
    """The refund as a subject: '…号操作员于 … 办理的退款 X（27.46 元）'."""
    operator = str(f.ev("operator_id"))
    return (
        f"{_who(f, 'zh', operator_id=operator)}于 {_minute(f.window_start)} {_worked_on(f, 'zh', operator)}"
        f"办理的退款 {f.ev('refund_txn_id')}（{_money(f.ev('amount_fen'), 'zh')}）"
    )


def _refund_made_zh(f: FindingFacts) -> str:
    """The refund as a clause: '…号操作员于 … 办理了退款 X（27.46 元）'."""
    operator = str(f.ev("operator_id"))
    return (
        f"{_who(f, 'zh', operator_id=operator)}于 {_minute(f.window_start)} {_worked_on(f, 'zh', operator)}"
        f"办理了退款 {f.ev('refund_txn_id')}（{_money(f.ev('amount_fen'), 'zh')}）"
    )


def _refunds_without_sale_en(f: FindingFacts) -> str:
    if f.ev("original_named"):
        return (
            f"{_refund_en(f)} names sale {f.ev('original_txn_id')}, which this merchant never took"
        )
    return f"{_refund_en(f)} names no original sale"


def _refunds_without_sale_zh(f: FindingFacts) -> str:
    if f.ev("original_named"):
        return f"{_refund_zh(f)}所引用的原交易 {f.ev('original_txn_id')} 并非本商户完成的交易"
    return f"{_refund_zh(f)}未引用任何原交易"


def _over_ratio(f: FindingFacts) -> str:
    sale = int(f.ev("sale_amount_fen"))
    return f"{int(f.ev('sale_refunded_total_fen')) / sale:,.2f}" if sale else "∞"


def _refunds_over_sale_en(f: FindingFacts) -> str:
    return (
        f"{_refund_en(f)} brought the refunds of sale {f.ev('original_txn_id')} to "
        f"{_money(f.ev('sale_refunded_total_fen'), 'en')}, {_over_ratio(f)} times the "
        f"{_money(f.ev('sale_amount_fen'), 'en')} it took"
    )


def _refunds_over_sale_zh(f: FindingFacts) -> str:
    return (
        f"{_refund_zh(f)}使原交易 {f.ev('original_txn_id')} 的累计退款达到 {_money(f.ev('sale_refunded_total_fen'), 'zh')}，"
        f"是原交易金额 {_money(f.ev('sale_amount_fen'), 'zh')}的 {_over_ratio(f)} 倍"
    )


def _refunds_to_other_card_en(f: FindingFacts) -> str:
    return (
        f"{_refund_en(f)} went to another card than the one that paid sale {f.ev('original_txn_id')} of "
        f"{_money(f.ev('sale_amount_fen'), 'en')}"
    )


def _refunds_to_other_card_zh(f: FindingFacts) -> str:
    return (
        f"{_refund_zh(f)}退到了另一张卡或钱包，而非支付原交易 {f.ev('original_txn_id')}"
        f"（{_money(f.ev('sale_amount_fen'), 'zh')}）的那一张"
    )


_PERMISSION_REASONS: Final[dict[str, tuple[str, str]]] = {
    "no_refund_permission": (
        "although the operator has no refund permission",
        "但该操作员没有退款权限",
    ),
    "operator_disabled": ("although the operator had been disabled", "但该操作员当时已被停用"),
    "unknown_operator": ("although no such operator is on record", "但系统中没有该操作员的记录"),
}


def _refunds_without_permission_en(f: FindingFacts) -> str:
    return f"{_refund_en(f)} went through {_pick(_PERMISSION_REASONS[str(f.ev('reason'))], 'en')}"


def _refunds_without_permission_zh(f: FindingFacts) -> str:
    return f"{_refund_made_zh(f)}，{_pick(_PERMISSION_REASONS[str(f.ev('reason'))], 'zh')}"


def _late_refunds_en(f: FindingFacts) -> str:
    return (
        f"{_refund_en(f)} came {_decimal(f.ev('lag_days'))} days after sale {f.ev('original_txn_id')} on "
        f"{_date(f.ev('sale_ts'))}; the refund window is {_n(f.ev('refund_window_days'))} days"
    )


def _late_refunds_zh(f: FindingFacts) -> str:
    return (
        f"{_refund_zh(f)}距原交易 {f.ev('original_txn_id')}（{_date(f.ev('sale_ts'))}）已过 "
        f"{_decimal(f.ev('lag_days'))} 天，超出 {_n(f.ev('refund_window_days'))} 天的退款期限"
    )


def _off_hours_refunds_en(f: FindingFacts) -> str:
    return (
        f"{_who(f, 'en')} made {_plural(f.ev('refunds'), 'refund', 'refunds')} totalling "
        f"{_money(f.ev('refunded_fen'), 'en')} between {_minute(f.window_start)} and {_minute(f.window_end)}, while "
        f"the merchant was closed (open {f.ev('opens_at')}-{f.ev('closes_at')}), up to "
        f"{_plural(round(float(f.ev('max_outside_minutes'))), 'minute', 'minutes')} outside opening hours"
    )


def _off_hours_refunds_zh(f: FindingFacts) -> str:
    return (
        f"{_who(f, 'zh')}于 {_minute(f.window_start)} 至 {_minute(f.window_end)}，即商户打烊期间"
        f"（营业时间 {f.ev('opens_at')}-{f.ev('closes_at')}），办理退款 {_n(f.ev('refunds'))} 笔，合计 "
        f"{_money(f.ev('refunded_fen'), 'zh')}，最多超出营业时间 {_n(round(float(f.ev('max_outside_minutes'))))} 分钟"
    )


def _refund_bursts_en(f: FindingFacts) -> str:
    return (
        f"{_who(f, 'en')} made {_plural(f.ev('refunds'), 'refund', 'refunds')} totalling {_money(f.ev('refunded_fen'), 'en')} in "
        f"{_plural(f.ev('span_minutes'), 'minute', 'minutes')} from {_minute(f.window_start)}; {_n(f.ev('min_refunds'))} within "
        f"{_n(f.ev('window_minutes'))} minutes make a burst"
    )


def _refund_bursts_zh(f: FindingFacts) -> str:
    return (
        f"{_who(f, 'zh')}自 {_minute(f.window_start)} 起的 {_n(f.ev('span_minutes'))} 分钟内办理退款 {_n(f.ev('refunds'))} 笔，"
        f"合计 {_money(f.ev('refunded_fen'), 'zh')}；{_n(f.ev('window_minutes'))} 分钟内达到 {_n(f.ev('min_refunds'))} 笔即为集中退款"
    )


def _round_amount_refunds_en(f: FindingFacts) -> str:
    return (
        f"{_who(f, 'en')} made {_plural(f.ev('refunds'), 'partial refund', 'partial refunds')} in round amounts totalling "
        f"{_money(f.ev('refunded_fen'), 'en')} between {_minute(f.window_start)} and {_minute(f.window_end)}"
    )


def _round_amount_refunds_zh(f: FindingFacts) -> str:
    return (
        f"{_who(f, 'zh')}于 {_minute(f.window_start)} 至 {_minute(f.window_end)} 办理整数金额的部分退款 "
        f"{_n(f.ev('refunds'))} 笔，合计 {_money(f.ev('refunded_fen'), 'zh')}"
    )


def _suspicious_login(f: FindingFacts, lang: Language) -> str:
    if f.evidence.get("lockout_id"):
        unlock = f.evidence.get("unlock_method")
        if lang == "en":
            return (
                f"after a lockout lifted {label(_UNLOCK, str(unlock), 'en')}"
                if unlock
                else "after a lockout"
            )
        return (
            f"在一次锁定（{label(_UNLOCK, str(unlock), 'zh')}）之后" if unlock else "在一次锁定之后"
        )
    return (
        f"after {_plural(f.ev('failures'), 'failed attempt', 'failed attempts')}"
        if lang == "en"
        else f"在连续 {_n(f.ev('failures'))} 次登录失败之后"
    )


def _refunds_after_suspicious_login_en(f: FindingFacts) -> str:
    return (
        f"{_who(f, 'en')} logged in {_suspicious_login(f, 'en')}, then made {_plural(f.ev('refunds'), 'refund', 'refunds')} "
        f"totalling {_money(f.ev('refunded_fen'), 'en')} within {_n(f.ev('window_minutes'))} minutes, "
        f"{_n(f.ev('refunds_to_other_card'))} of them to cards that did not pay "
        f"({_minute(f.window_start)} to {_clock(f.window_end)})"
    )


def _refunds_after_suspicious_login_zh(f: FindingFacts) -> str:
    return (
        f"{_who(f, 'zh')}{_suspicious_login(f, 'zh')}登录，随即在 {_n(f.ev('window_minutes'))} 分钟内办理退款 "
        f"{_n(f.ev('refunds'))} 笔，合计 {_money(f.ev('refunded_fen'), 'zh')}，其中 {_n(f.ev('refunds_to_other_card'))} 笔"
        f"退到了并未付款的卡上（{_minute(f.window_start)} 至 {_clock(f.window_end)}）"
    )


_SHARE_FEATURES: Final = frozenset({"refund_rate", "refund_rate_28d", "off_hours_share", "full_refund_share",
                                    "repeat_card_refund_share_28d"})  # fmt: skip


def _feature_value(feature: str, value: Any, lang: Language) -> str:
    if feature in _SHARE_FEATURES:
        return f"{float(value) * 100:.0f}%"
    if feature.endswith("_fen"):
        return _money(value, lang)
    if float(value) == int(float(value)):
        return _n(value)
    return _decimal(value)


def _feature(f: FindingFacts, feature: str, lang: Language) -> str:
    name = label(FEATURES, feature, lang)
    value = f.evidence.get(feature)
    if value is None:
        return name
    shown = _feature_value(feature, value, lang)
    return f"{name}: {shown}" if lang == "en" else f"{name}为 {shown}"


def _anomaly_rank(f: FindingFacts, lang: Language) -> str:
    """The anomaly score, and its percentile in words."""
    score = f"{float(f.ev('anomaly_score')):.2f}"
    percentile = float(f.ev("anomaly_percentile"))
    if lang == "en":
        rank = (
            "higher than every operator-day of its week's comparison sample"
            if percentile >= 1.0
            else f"higher than {_share(percentile)} of the operator-days of its week's comparison sample"
        )
        return f"anomaly score {score}, {rank}"
    rank = (
        "高于同周比较样本中的所有操作员日"
        if percentile >= 1.0
        else f"高于同周比较样本中 {_share(percentile)} 的操作员日"
    )
    return f"异常分 {score}，{rank}"


def _operator_anomaly_scores_en(f: FindingFacts) -> str:
    features = (
        "; ".join(_feature(f, x, "en") for x in f.ev("standout_features")) or "no single feature"
    )
    return (
        f"{_who(f, 'en')}{_worked_on(f, 'en')} on {_date(f.ev('day'))} stood out from the merchant's "
        f"operators and from their own past ({_anomaly_rank(f, 'en')}): {features}"
    )


def _operator_anomaly_scores_zh(f: FindingFacts) -> str:
    features = (
        "；".join(_feature(f, x, "zh") for x in f.ev("standout_features")) or "无单一突出特征"
    )
    return (
        f"{_who(f, 'zh')}于 {_date(f.ev('day'))} {_worked_on(f, 'zh')}的活动明显异于本商户其他操作员及其自身历史"
        f"（{_anomaly_rank(f, 'zh')}）：{features}"
    )


SUMMARIES: Final[dict[Language, dict[str, Template]]] = {
    "en": {
        "pin_brute_force": _pin_brute_force_en,
        "operator_enumeration": _operator_enumeration_en,
        "lockout_storm": _lockout_storm_en,
        "lockout_not_enforced": _lockout_not_enforced_en,
        "credential_sharing": _credential_sharing_en,
        "network_failure_burst": _network_failure_burst_en,
        "weak_pins": _weak_pins_en,
        "default_pins": _default_pins_en,
        "stale_pins": _stale_pins_en,
        "shared_pins": _shared_pins_en,
        "reused_pins": _reused_pins_en,
        "refunds_without_sale": _refunds_without_sale_en,
        "refunds_over_sale": _refunds_over_sale_en,
        "refunds_to_other_card": _refunds_to_other_card_en,
        "refunds_without_permission": _refunds_without_permission_en,
        "late_refunds": _late_refunds_en,
        "off_hours_refunds": _off_hours_refunds_en,
        "refund_bursts": _refund_bursts_en,
        "round_amount_refunds": _round_amount_refunds_en,
        "refunds_after_suspicious_login": _refunds_after_suspicious_login_en,
        "operator_anomaly_scores": _operator_anomaly_scores_en,
    },
    "zh": {
        "pin_brute_force": _pin_brute_force_zh,
        "operator_enumeration": _operator_enumeration_zh,
        "lockout_storm": _lockout_storm_zh,
        "lockout_not_enforced": _lockout_not_enforced_zh,
        "credential_sharing": _credential_sharing_zh,
        "network_failure_burst": _network_failure_burst_zh,
        "weak_pins": _weak_pins_zh,
        "default_pins": _default_pins_zh,
        "stale_pins": _stale_pins_zh,
        "shared_pins": _shared_pins_zh,
        "reused_pins": _reused_pins_zh,
        "refunds_without_sale": _refunds_without_sale_zh,
        "refunds_over_sale": _refunds_over_sale_zh,
        "refunds_to_other_card": _refunds_to_other_card_zh,
        "refunds_without_permission": _refunds_without_permission_zh,
        "late_refunds": _late_refunds_zh,
        "off_hours_refunds": _off_hours_refunds_zh,
        "refund_bursts": _refund_bursts_zh,
        "round_amount_refunds": _round_amount_refunds_zh,
        "refunds_after_suspicious_login": _refunds_after_suspicious_login_zh,
        "operator_anomaly_scores": _operator_anomaly_scores_zh,
    },
}


def finding_sentence(facts: FindingFacts, lang: Language) -> str | None:
    """The finding's sentence in ``lang`` from its template; None when it must fall back.

    Both languages are written from the same evidence through the same number formats; an
    English sentence starts with a capital and ends with a full stop, a Chinese one ends
    with "。" and follows :func:`zh_spacing`.
    """
    template = SUMMARIES[lang].get(facts.rule)
    if template is None:
        return None
    try:
        sentence = template(facts)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None
    if lang == "zh":
        return zh_spacing(sentence) + "。"
    return sentence[:1].upper() + sentence[1:] + "."


# -- evidence, key by key ----------------------------------------------------------------------

EvidenceKind = Literal[
    "text", "count", "money", "days", "minutes", "hours", "share", "percentile", "score",
    "stamp", "bool", "number", "set_kind", "set_by", "reason", "unlock", "weakness",
    "lockout_reasons", "features",
]  # fmt: skip
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
    "min_errors": ("policy: fewest network errors", "阈值：最少网络错误次数", "count"),
    "min_operator_numbers": ("policy: fewest operator numbers", "阈值：最少操作员编号数", "count"),
    "min_operators": ("policy: fewest operators locked", "阈值：最少被锁定操作员数", "count"),
    "max_failures": ("policy: lock after at most (wrong PINs)", "政策：最多输错次数", "count"),
    "min_lockout_minutes": ("policy: lock for at least", "政策：最短锁定时长", "minutes"),
    "min_switches": ("policy: fewest switches", "阈值：最少切换次数", "count"),
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
    "seed": ("model seed", "模型随机种子", "text"),
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
    "set_kind": {"initial": ("initial setting", "初始设置"), "change": ("change", "修改"),
                 "reset": ("reset", "重置")},
    "set_by": _SET_BY,
    "reason": _REASONS,
    "unlock": {"timeout": ("timed out", "超时自动解除"), "admin": ("by the administrator", "由管理员解除"),
               "service_desk": ("by the service desk", "由服务台解除")},
    "weakness": WEAKNESS_CLASSES,
    "lockout_reasons": _LOCKOUT_REASONS,
    "features": FEATURES,
}  # fmt: skip
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
    """Each evidence entry as (label, value) in ``lang``; a key without a label shows as is."""
    return [
        (evidence_label(key, lang) or key, evidence_value(key, value, lang))
        for key, value in evidence.items()
    ]
