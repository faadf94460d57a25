"""Operator management: operators added and deleted, permissions granted and revoked, and the
privilege abuse and conditions built on them (docs/scenarios.md, "Privilege audit").

Everything here runs on its own random streams (``stream(seed, "privileges", ...)``) after
the other injectors and look-alikes, so the rest of the world draws what it drew without it.

- The legitimate timeline: every operator's ``added`` event at its creation (by the
  terminal's administrator, or the acquirer for the administrator itself) with a ``granted``
  event for each right beyond sale and query, some refund rights granted later, some granted
  for a while and revoked.
- Attacks (off with ``--no-fraud``): ``privilege_grant_abuse`` (the administrator grants a
  clerk refunds, and the clerk refunds to a card that never paid within hours) and
  ``reset_then_refund`` (the administrator resets a clerk's PIN, and refunds follow under the
  clerk's number soon after).
- Conditions (shares, they stay with ``--no-fraud``): ``manage_and_refund`` (clerks who hold
  both), ``ghost_operator`` (clerk accounts added and never used), ``common_default_pin``
  (clerk 01 on 0000, a smart terminal's administrator 99 on 12345678, never changed).
- Look-alikes: ``promotion`` (a refund right granted and first used days later for a genuine
  return) and ``staff_turnover`` (a temporary clerk added, working a few days, deleted).

Plaintext PINs exist only in memory here, as in :mod:`posaudit.simulate.pinmodel`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import polars as pl

from posaudit.pins import COMMON_DEFAULT_PINS
from posaudit.simulate.fraud import DayContext, _limit, _refund_rows, _towards
from posaudit.simulate.pinmodel import PinTimeline, pin_code, pin_probabilities
from posaudit.simulate.rng import exact_mask, stream
from posaudit.simulate.scenario import BENIGN_PREFIX, Scenario
from posaudit.simulate.world import US_PER_DAY, US_PER_MINUTE, World, day_start_us

US_PER_SECOND: Final = 1_000_000
ADMIN: Final = 1  # index of 'admin' in pinmodel.ACTORS
ACQUIRER: Final = 3
# Rights beyond query and sale, in the order a new operator's grants are logged.
ELEVATED: Final = ("refund", "transfer", "manage")
# Refund rights given after the clerk started (a promotion long ago), and rights lent for a
# while and taken back: the ordinary history before the simulated days.
LATER_GRANT_SHARE: Final = 0.3
LENT_SHARE: Final = 0.1
# Ghost accounts are added from this many days before the world's first day to its tenth day.
GHOST_LEAD_DAYS: Final = 30
GHOST_ADDED_BY_DAY: Final = 10
# Temporary clerks' operator numbers: above every merchant's regular clerks.
TEMP_NUMBERS: Final = range(60, 90)


@dataclass
class _Grant:
    op: int
    day: int
    refunds: int
    delay_minutes: int


@dataclass
class _Reset:
    op: int
    day: int
    ts: int
    refunds: int
    delay_minutes: int


@dataclass
class PrivilegePlan:
    """What the privilege audit adds to one simulation, planned before its first day."""

    world: World
    from_us: int
    to_us: int
    timeline: PinTimeline
    # (ts, operator, kind, permission or None, actor, actor operator or -1)
    events: list[tuple[int, int, str, str | None, int, int]] = field(default_factory=list)
    labels: list[tuple[str, str, int, int, int]] = field(default_factory=list)
    extra_rows: list[dict[str, Any]] = field(default_factory=list)  # operators beyond the world
    extra_pins: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    grants: list[_Grant] = field(default_factory=list)
    resets: list[_Reset] = field(default_factory=list)
    promotions: list[tuple[int, int, int]] = field(default_factory=list)  # op, granted, use day
    temps: list[tuple[int, int, list[int]]] = field(default_factory=list)  # op, terminal, days
    # refunds other injections made under the number of an operator granted the refund right
    # here: (transaction seq, operator, ts)
    borrowed: list[tuple[int, int, int]] = field(default_factory=list)
    # promotions called off: another attack refunded under the clerk's number after the grant
    # and before its first genuine use (which, granted, would read as a grant used at once)
    cancelled: set[int] = field(default_factory=set)

    @property
    def extra_ids(self) -> list[str]:
        return [row["operator_id"] for row in self.extra_rows]

    def terminal_of(self, op: int) -> int:
        if op < self.world.n_operators:
            return int(self.world.o_terminal[op])
        return int(self.extra_rows[op - self.world.n_operators]["_terminal"])

    def event(
        self, ts: int, op: int, kind: str, permission: str | None = None, actor_op: int = -1
    ) -> None:
        actor = ADMIN if actor_op >= 0 else ACQUIRER
        self.events.append((int(ts), int(op), kind, permission, actor, int(actor_op)))

    def pin_frame(self) -> pl.DataFrame:
        """The PIN events of the timeline and of the operators beyond the world."""
        timeline = self.timeline
        frame = pl.DataFrame(
            {
                "op": timeline.operator,
                "ts": timeline.ts_us,
                "kind": timeline.kind,
                "actor": timeline.actor,
                "pin": timeline.pin,
            }
        )
        if not self.extra_pins:
            return frame
        extra = pl.DataFrame(
            self.extra_pins, schema=["op", "ts", "kind", "actor", "pin"], orient="row"
        )
        return pl.concat([frame, extra.cast(frame.schema)])  # type: ignore[arg-type]

    def operators(self, operators: pl.DataFrame) -> pl.DataFrame:
        """The world's operators table as it stands at the end: rights granted, deletions,
        and the operators added beyond the world."""
        final = self.final_state()
        frame = operators
        if self.extra_rows:
            extra = pl.DataFrame(
                [{k: v for k, v in row.items() if not k.startswith("_")} for row in self.extra_rows]
            ).with_columns(
                pl.col("created_at").cast(pl.Datetime("us")),
                pl.col("disabled_at").cast(pl.Datetime("us")),
            )
            frame = pl.concat([frame, extra.select(frame.columns).cast(frame.schema)])  # type: ignore[arg-type]
        if final.is_empty():
            return frame
        return (
            frame.join(final, on="operator_id", how="left")
            .with_columns(
                pl.coalesce("refund_held", "can_refund").alias("can_refund"),
                pl.coalesce("manage_held", "can_manage").alias("can_manage"),
                pl.coalesce("deleted_at", "disabled_at").alias("disabled_at"),
            )
            .select(frame.columns)
        )

    def final_state(self) -> pl.DataFrame:
        """Per operator whose rights or record the events change: its refund and manage
        rights after the last grant or revoke (null: unchanged), and when it was deleted."""
        ids = pl.DataFrame({"op": range(len(self.all_ids())), "operator_id": self.all_ids()})
        events = self.event_frame(-(2**62)).sort("ts")
        rights = (
            events.filter(pl.col("kind").is_in(["granted", "revoked"]))
            .group_by("op", "permission")
            .agg((pl.col("kind").last() == "granted").alias("held"))
            .pivot(on="permission", index="op", values="held")
        )
        for right in ("refund", "manage"):
            if right not in rights.columns:
                rights = rights.with_columns(pl.lit(None, pl.Boolean).alias(right))
        deleted = (
            events.filter(pl.col("kind") == "deleted")
            .group_by("op")
            .agg(pl.col("ts").min().cast(pl.Datetime("us")).alias("deleted_at"))
        )
        return (
            rights.select(
                "op", pl.col("refund").alias("refund_held"), pl.col("manage").alias("manage_held")
            )
            .join(deleted, on="op", how="full", coalesce=True)
            .join(ids, on="op")
            .drop("op")
        )

    def all_ids(self) -> list[str]:
        return [*self.world.o_ids.tolist(), *self.extra_ids]

    def event_frame(self, lower_us: int) -> pl.DataFrame:
        """The events from ``lower_us`` to the end, integer-coded, in time order."""
        rows = sorted(e for e in self.events if lower_us <= e[0] < self.to_us)
        return pl.DataFrame(
            rows,
            schema={
                "ts": pl.Int64,
                "op": pl.Int64,
                "kind": pl.String,
                "permission": pl.String,
                "actor": pl.Int64,
                "actor_op": pl.Int64,
            },
            orient="row",
        )


def _count(rate_per_1000: float, exposure: float) -> int:
    return int(np.floor(rate_per_1000 / 1000 * exposure + 0.5))


def _opening_minute(world: World, op_or_merchant: int, rng: np.random.Generator) -> int:
    merchant = int(op_or_merchant)
    opens, closes = int(world.m_open[merchant]), int(world.m_close[merchant])
    return int(rng.integers(opens + 30, max(closes - 90, opens + 31)))


def _strong_pin(rng: np.random.Generator, number: str) -> int:
    """A PIN no weakness class holds and not built from the operator's number."""
    from posaudit.pins import _class_codes

    codes = _class_codes()
    own = {int(number * 3), int("0000" + number), int(number + "0000"), int("00" + number + "00")}
    while True:
        value = int(rng.integers(0, 1_000_000))
        if codes[value] == 0 and value not in own:
            return value


def _apply_common_defaults(
    world: World, timeline: PinTimeline, seed: int, share: float
) -> tuple[PinTimeline, np.ndarray]:
    """Of the clerks 01 whose PIN the administrator set last (when it added them, or at a
    reset), and the smart terminals' administrators 99 whose last PIN they chose themselves,
    a ``share`` hold the common default (0000, 12345678) from that event on."""
    ops = timeline.operator
    counts = np.bincount(ops, minlength=world.n_operators)
    is_smart = world.t_family[world.o_terminal] == 1
    first_index = np.searchsorted(ops, np.arange(world.n_operators))
    last = np.clip(first_index + counts - 1, 0, max(ops.size - 1, 0))
    has_pin = counts > 0
    kind, actor, pins = timeline.kind[last], timeline.actor[last], timeline.pin[last]
    # a PIN another operator of the merchant holds as well is shared: leave those alone
    merchant_pin = pl.DataFrame({"m": world.o_merchant, "pin": pins})
    shared = merchant_pin.select(pl.len().over("m", "pin") > 1).to_series().to_numpy()
    by_admin = (actor == ADMIN) & ((kind == 0) | (kind == 2))
    clerk_01 = (~world.o_is_admin) & (world.o_no == "01") & by_admin & ~shared
    admin_99 = world.o_is_admin & (world.o_no == "99") & is_smart & (kind == 1) & (actor == 0)
    eligible = np.flatnonzero(has_pin & (clerk_01 | admin_99))
    rng = stream(seed, "privilege_plan", 0)
    chosen = eligible[exact_mask(rng, eligible.size, share)] if eligible.size else eligible
    if chosen.size == 0:
        return timeline, chosen
    new_pins = timeline.pin.copy()
    for op in chosen:
        number = str(world.o_no[op])
        family = "smart" if is_smart[op] else "esign"
        text = next(
            pin for no, fam, pin in COMMON_DEFAULT_PINS if no == number and fam in (None, family)
        )
        new_pins[last[op]] = pin_code(text)
    return (
        PinTimeline(
            operator=timeline.operator,
            ts_us=timeline.ts_us,
            kind=timeline.kind,
            actor=timeline.actor,
            pin=new_pins,
            horizon_us=timeline.horizon_us,
        ),
        chosen,
    )


def _history(plan: PrivilegePlan, world: World, seed: int, manage_share: float) -> np.ndarray:
    """The events before the first day, and the clerks given manage on top of refund; returns
    every operator's manage right."""
    rng = stream(seed, "privilege_plan", 1)
    ops = world.operators
    can = {right: ops.get_column(f"can_{right}").to_numpy().copy() for right in ELEVATED}
    is_clerk = ~world.o_is_admin
    # segregation of duties broken: clerks with refund given manage too, up to the share
    refund_clerks = np.flatnonzero(is_clerk & can["refund"])
    both = int((can["manage"][refund_clerks]).sum())
    wanted = int(np.floor(manage_share * refund_clerks.size + 0.5))
    pool = refund_clerks[~can["manage"][refund_clerks]]
    extra = rng.choice(pool, size=min(max(wanted - both, 0), pool.size), replace=False)
    for op in range(world.n_operators):
        created = int(world.o_created_us[op])
        admin = -1 if world.o_is_admin[op] else int(world.t_admin[world.o_terminal[op]])
        plan.event(created, op, "added", actor_op=admin)
        age = max(plan.from_us - created - 30 * US_PER_DAY, US_PER_DAY)
        for right in ELEVATED:
            if not can[right][op]:
                continue
            when = created + US_PER_SECOND
            if right == "refund" and is_clerk[op] and rng.random() < LATER_GRANT_SHARE:
                when = created + int(rng.integers(1, 1 + age // US_PER_DAY)) * US_PER_DAY
            plan.event(when, op, "granted", right, admin)
        if is_clerk[op] and not can["refund"][op] and rng.random() < LENT_SHARE:
            lent = created + int(rng.integers(1, 1 + age // US_PER_DAY)) * US_PER_DAY
            back = min(lent + int(rng.integers(1, 15)) * US_PER_DAY, plan.from_us - US_PER_DAY)
            if back > lent:
                plan.event(lent, op, "granted", "refund", admin)
                plan.event(back, op, "revoked", "refund", admin)
    for op in extra:
        created = int(world.o_created_us[op])
        span = max((plan.from_us - created) // US_PER_DAY - 2, 1)
        when = created + int(rng.integers(1, span + 1)) * US_PER_DAY
        plan.event(when, int(op), "granted", "manage", int(world.t_admin[world.o_terminal[op]]))
    manage = can["manage"].copy()
    manage[extra] = True
    return manage


def _next_numbers(world: World) -> dict[int, int]:
    """The next free clerk number of each merchant."""
    top: dict[int, int] = {}
    for op in np.flatnonzero(~world.o_is_admin):
        merchant = int(world.o_merchant[op])
        top[merchant] = max(top.get(merchant, 0), int(world.o_no[op]))
    return {merchant: number + 1 for merchant, number in top.items()}


def _extra_operator(
    plan: PrivilegePlan, terminal: int, number: str, created: int, *, can_refund: bool
) -> int:
    world = plan.world
    op = world.n_operators + len(plan.extra_rows)
    merchant = int(world.t_merchant[terminal])
    rng = stream(op, "privilege_plan", 4)
    from posaudit.simulate import catalog as cat

    plan.extra_rows.append(
        {
            "operator_id": f"{world.t_ids[terminal]}-{number}",
            "terminal_id": str(world.t_ids[terminal]),
            "merchant_id": str(world.merchants.get_column("merchant_id")[merchant]),
            "operator_no": number,
            "name": f"{cat.SURNAMES[int(rng.integers(0, len(cat.SURNAMES)))]} "
            f"{cat.GIVEN[int(rng.integers(0, len(cat.GIVEN)))]}",
            "role": "clerk",
            "can_query": True,
            "can_sale": True,
            "can_refund": can_refund,
            "can_transfer": False,
            "can_manage": False,
            "created_at": created,
            "disabled_at": None,
            "_terminal": terminal,
        }
    )
    admin = int(world.t_admin[terminal])
    plan.event(created, op, "added", actor_op=admin)
    if can_refund:
        plan.event(created + US_PER_SECOND, op, "granted", "refund", admin)
    plan.extra_pins.append((op, created, 0, ADMIN, _strong_pin(rng, number)))
    return op


def plan_privileges(
    world: World,
    scenario: Scenario,
    seed: int,
    *,
    first_day: int,
    days: int,
    fraud_on: bool,
    timeline: PinTimeline,
    taken: frozenset[str] = frozenset(),
    refund_held: frozenset[str] = frozenset(),
) -> PrivilegePlan:
    """The operator events, privilege attacks, conditions and look-alikes of days
    ``first_day`` .. ``first_day + days - 1``; ``taken``: operator ids already in the store;
    ``refund_held``: those of them holding the refund right now (earlier days granted it), who
    are never granted it again."""
    from_us, to_us = day_start_us(world, first_day), day_start_us(world, first_day + days)
    timeline, defaults = _apply_common_defaults(
        world, timeline, seed, max(scenario.rate("common_default_pin"), 0.0)
    )
    plan = PrivilegePlan(world=world, from_us=from_us, to_us=to_us, timeline=timeline)
    world_start = day_start_us(world, 0)
    plan.from_us = world_start  # the history runs up to the world's first day
    manage = _history(plan, world, seed, max(scenario.rate("manage_and_refund"), 0.0))
    plan.from_us = from_us

    def enabled(name: str) -> bool:
        return bool(scenario.settings["scenarios"][name]["enabled"])

    clerk = ~world.o_is_admin
    if enabled("manage_and_refund"):
        for op in np.flatnonzero(clerk & world.o_can_refund & manage):
            plan.labels.append(("manage_and_refund", "operator", int(op), from_us, to_us - 1))
    if enabled("common_default_pin"):
        for op in defaults:
            plan.labels.append(("common_default_pin", "operator", int(op), from_us, to_us - 1))

    # ghost accounts: world-level, added around the first day and never used
    numbers = _next_numbers(world)
    ghost_rng = stream(seed, "privilege_plan", 2)
    sale_clerks = int((clerk & world.o_can_sale).sum())
    ghost_count = int(np.floor(max(scenario.rate("ghost_operator"), 0.0) * sale_clerks + 0.5))
    for _ in range(ghost_count if enabled("ghost_operator") else 0):
        terminal = int(ghost_rng.integers(0, world.n_terminals))
        merchant = int(world.t_merchant[terminal])
        number = numbers.get(merchant, 1)
        numbers[merchant] = number + 1
        day = int(ghost_rng.integers(-GHOST_LEAD_DAYS, GHOST_ADDED_BY_DAY))
        created = day_start_us(world, day) + _opening_minute(world, merchant, ghost_rng) * (
            US_PER_MINUTE
        )
        op = _extra_operator(
            plan, terminal, f"{number:02d}", created, can_refund=bool(ghost_rng.random() < 0.5)
        )
        if created < to_us:
            plan.labels.append(("ghost_operator", "operator", op, max(created, from_us), to_us - 1))
    if first_day:  # on --append the world-level events and operators are in the store already
        plan.events = [e for e in plan.events if e[0] >= from_us]

    rng = stream(seed, "privilege_plan", 3, first_day)
    promoted: set[int] = set()
    holds_now = np.isin(world.o_ids, sorted(refund_held))
    pool = np.flatnonzero(clerk & world.o_can_sale & ~world.o_can_refund & ~manage & ~holds_now)
    exposure = world.n_operators * days
    grant_count = _count(scenario.rate("privilege_grant_abuse", fraud=fraud_on), exposure)
    for op in rng.choice(pool, size=min(grant_count, pool.size), replace=False):
        promoted.add(int(op))
        plan.grants.append(
            _Grant(
                int(op),
                first_day + int(rng.integers(0, days)),
                int(rng.integers(2, 5)),
                int(rng.integers(10, 121)),
            )
        )
    # a reset would end a common default the conditions label to the end
    refunders = np.setdiff1d(np.flatnonzero(clerk & world.o_can_refund), defaults)
    reset_count = _count(scenario.rate("reset_then_refund", fraud=fraud_on), exposure)
    resets = rng.choice(refunders, size=min(reset_count, refunders.size), replace=False)
    new_pins = []
    cdf = np.cumsum(pin_probabilities(max(scenario.rate("weak_pin"), 0.0)))
    for op in resets:
        day = first_day + int(rng.integers(0, days))
        merchant = int(world.o_merchant[op])
        opens, closes = int(world.m_open[merchant]), int(world.m_close[merchant])
        minute = int(rng.integers(opens + 120, max(closes - 120, opens + 121)))
        ts = day_start_us(world, day) + minute * US_PER_MINUTE
        plan.resets.append(
            _Reset(int(op), day, ts, int(rng.integers(2, 5)), int(rng.integers(5, 41)))
        )
        new_pins.append(
            (int(op), ts, 2, ADMIN, int(np.searchsorted(cdf, rng.random() * 0.999999, "right")))
        )
    if new_pins:
        added = np.array(new_pins, dtype=np.int64)
        op_all = np.concatenate([timeline.operator, added[:, 0]])
        ts_all = np.concatenate([timeline.ts_us, added[:, 1]])
        order = np.lexsort((ts_all, op_all))
        plan.timeline = PinTimeline(
            operator=op_all[order],
            ts_us=ts_all[order],
            kind=np.concatenate([timeline.kind, added[:, 2]])[order],
            actor=np.concatenate([timeline.actor, added[:, 3]])[order],
            pin=np.concatenate([timeline.pin, added[:, 4]])[order],
            horizon_us=timeline.horizon_us,
        )

    # look-alikes: per 1,000 merchant-days, as every other kind
    merchant_days = world.m_category.size * days
    table = scenario.settings["lookalikes"]
    rate = float(table.get("promotion", 0.0)) if table["enabled"] else 0.0
    pool = np.array([op for op in pool if int(op) not in promoted], dtype=np.int64)
    for op in rng.choice(pool, size=min(_count(rate, merchant_days), pool.size), replace=False):
        granted_day = first_day + int(rng.integers(0, max(days - 2, 1)))
        merchant = int(world.o_merchant[op])
        granted = day_start_us(world, granted_day) + _opening_minute(world, merchant, rng) * (
            US_PER_MINUTE
        )
        use_day = granted_day + int(rng.integers(2, 9))
        plan.event(granted, int(op), "granted", "refund", int(world.t_admin[world.o_terminal[op]]))
        plan.promotions.append((int(op), granted, use_day))
        end = day_start_us(world, min(use_day + 1, first_day + days)) - 1
        plan.labels.append((BENIGN_PREFIX + "promotion", "operator", int(op), granted, end))
    rate = float(table.get("staff_turnover", 0.0)) if table["enabled"] else 0.0
    used: set[str] = set(taken) | set(plan.extra_ids)
    for _ in range(_count(rate, merchant_days)):
        terminal = int(rng.integers(0, world.n_terminals))
        merchant = int(world.t_merchant[terminal])
        free = [n for n in TEMP_NUMBERS if f"{world.t_ids[terminal]}-{n:02d}" not in used]
        if not free:
            continue
        number = f"{free[0]:02d}"
        used.add(f"{world.t_ids[terminal]}-{number}")
        day = first_day + int(rng.integers(0, days))
        added = day_start_us(world, day) + _opening_minute(world, merchant, rng) * US_PER_MINUTE
        op = _extra_operator(plan, terminal, number, added, can_refund=False)
        work = sorted({day + int(d) for d in rng.integers(0, 6, int(rng.integers(1, 4)))})
        work = [d for d in work if d < first_day + days]
        plan.temps.append((op, terminal, work))
        deleted_day = (work[-1] if work else day) + int(rng.integers(1, 4))
        deleted = day_start_us(world, deleted_day) + _opening_minute(world, merchant, rng) * (
            US_PER_MINUTE
        )
        if deleted < to_us:
            plan.event(deleted, op, "deleted", actor_op=int(world.t_admin[terminal]))
        plan.labels.append(
            (BENIGN_PREFIX + "staff_turnover", "operator", op, added, min(deleted, to_us - 1))
        )
    return plan


def _attacker_card(ctx: DayContext, terminal: int) -> int:
    """A card of the world's own card space: one that paid at another terminal today."""
    others = ctx.sales.filter(pl.col("terminal") != terminal)
    source = others if others.height else ctx.sales
    return int(source.get_column("card")[int(ctx.rng.integers(0, source.height))])


def _refunds_to(
    ctx: DayContext, scenario: str, op: int, terminal: int, sales: pl.DataFrame, first_ts: int
) -> int:
    """Refunds of ``sales`` by ``op`` to one card that never paid them, from ``first_ts``."""
    rng = ctx.rng
    count = sales.height
    ts = first_ts + np.concatenate(
        [[0], np.cumsum(rng.integers(2, 9, count - 1) * US_PER_MINUTE)]
    ).astype(np.int64)
    ts = np.minimum(ts, ctx.base + 2 * US_PER_DAY - 1)
    card = np.full(count, _attacker_card(ctx, terminal))
    rows = _refund_rows(ctx, sales, ts, op, card=card)
    for seq, when in zip(rows.get_column("seq").to_list(), ts.tolist(), strict=True):
        ctx.label("refund_other_card", "transaction", seq, when, when)
    return int(ts[-1])


def inject_day(ctx: DayContext, plan: PrivilegePlan) -> None:
    """Today's planned grants, resets, promotions and temporary clerks' logins."""
    world, rng = ctx.world, ctx.rng
    granted_here = {grant.op for grant in plan.grants} | {op for op, _, _ in plan.promotions}
    for frame in ctx.activity.txns:
        mine = frame.filter(
            (pl.col("kind") == "refund") & pl.col("operator").is_in(sorted(granted_here))
        )
        plan.borrowed.extend(mine.select("seq", "operator", "ts").iter_rows())
    for grant in plan.grants:
        if grant.day != ctx.day:
            continue
        op, terminal = grant.op, int(world.o_terminal[grant.op])
        sales = ctx.sales_at(terminal).sort("ts")
        level = ctx.level("privilege_grant_abuse")
        if sales.height < grant.refunds + 1:
            continue
        # the grant's first use comes within hours; an evading one waits towards the limit
        limit_minutes = _limit("permission_granted_then_used", "max_hours") * 60
        delay = _towards(grant.delay_minutes, limit_minutes + 60, level)
        picked = sales.head(grant.refunds)
        first = int(picked.get_column("ts")[-1]) + int(rng.integers(5, 31)) * US_PER_MINUTE
        granted = first - delay * US_PER_MINUTE
        admin = int(world.t_admin[terminal])
        plan.event(granted, op, "granted", "refund", admin)
        ctx.activity.logins.event(
            first - 2 * US_PER_MINUTE, terminal, str(world.o_no[op]), op, "success"
        )
        last = _refunds_to(ctx, "privilege_grant_abuse", op, terminal, picked, first)
        ctx.label("privilege_grant_abuse", "operator", op, granted, last)
    for reset in plan.resets:
        if reset.day != ctx.day:
            continue
        op, terminal = reset.op, int(world.o_terminal[reset.op])
        level = ctx.level("reset_then_refund")
        refunds = reset.refunds
        if level > 0:
            below = _limit("refunds_after_admin_reset", "min_refunds") - 1
            refunds = max(1, _towards(refunds, below, level))
        sales = ctx.sales_at(terminal).filter(pl.col("ts") < reset.ts).sort("ts")
        if sales.height < refunds:
            continue
        limit_minutes = _limit("refunds_after_admin_reset", "max_hours") * 60
        delay = _towards(reset.delay_minutes, limit_minutes + 30, level)
        picked = sales.tail(refunds)
        ctx.activity.logins.event(
            reset.ts + int(rng.integers(1, 4)) * US_PER_MINUTE,
            terminal,
            str(world.o_no[op]),
            op,
            "success",
        )
        first = reset.ts + max(delay, 4) * US_PER_MINUTE
        last = _refunds_to(ctx, "reset_then_refund", op, terminal, picked, first)
        ctx.label("reset_then_refund", "operator", op, reset.ts, last)
    for op, granted, use_day in plan.promotions:
        if use_day != ctx.day:
            continue
        if any(b_op == op and ts >= granted for _seq, b_op, ts in plan.borrowed):
            plan.cancelled.add(op)
            continue
        terminal = int(world.o_terminal[op])
        sales = ctx.sales_at(terminal)
        if sales.height == 0:
            continue
        sale = sales.sample(1, seed=int(rng.integers(0, 2**31)))
        ts = np.minimum(
            sale.get_column("ts").to_numpy() + int(rng.integers(20, 121)) * US_PER_MINUTE,
            ctx.base + US_PER_DAY - 1,
        )
        ctx.activity.logins.event(
            int(ts[0]) - 3 * US_PER_MINUTE, terminal, str(world.o_no[op]), op, "success"
        )
        _refund_rows(ctx, sale, ts, op)
    for op, terminal, work in plan.temps:
        if ctx.day not in work:
            continue
        merchant = int(world.t_merchant[terminal])
        number = plan.extra_rows[op - world.n_operators]["operator_no"]
        when = ctx.base + _opening_minute(world, merchant, rng) * US_PER_MINUTE
        ctx.activity.logins.event(when, terminal, number, op, "success")
    ctx.flush()


def operator_events_frame(plan: PrivilegePlan, ids: pl.Series, lower_us: int) -> pl.DataFrame:
    """The operator_events rows from ``lower_us`` on, without their event ids."""
    events = plan.event_frame(lower_us)
    actors = pl.Series(["self", "admin", "service_desk", "acquirer"])
    return pl.DataFrame(
        {
            "ts": events.get_column("ts").cast(pl.Datetime("us")),
            "operator_id": ids.gather(events.get_column("op")),
            "kind": events.get_column("kind"),
            "permission": events.get_column("permission"),
            "actor": actors.gather(events.get_column("actor")),
            "actor_operator_id": ids.gather(events.get_column("actor_op").clip(0)).zip_with(
                events.get_column("actor_op") >= 0, pl.Series([None], dtype=pl.String)
            ),
        }
    )


def update_operators(store: Any, plan: PrivilegePlan, taken: frozenset[str]) -> None:
    """On ``--append``: add the operators the new days add, and set the rights and deletions
    their events change."""
    fresh = [row for row in plan.extra_rows if row["operator_id"] not in taken]
    if fresh:
        full = plan.operators(store.frame("SELECT * FROM operators LIMIT 0"))
        store.append(
            "operators", full.filter(pl.col("operator_id").is_in([r["operator_id"] for r in fresh]))
        )
    ids = plan.all_ids()
    for op in sorted(plan.cancelled):  # the rights the world gave it: no refund
        store.execute("UPDATE operators SET can_refund = false WHERE operator_id = ?", [ids[op]])
    for operator_id, refund, manage, deleted in (
        plan.final_state()
        .filter(pl.col("operator_id").is_in(list(taken)))
        .select("operator_id", "refund_held", "manage_held", "deleted_at")
        .iter_rows()
    ):
        store.execute(
            "UPDATE operators SET can_refund = coalesce(?, can_refund), "
            "can_manage = coalesce(?, can_manage), disabled_at = coalesce(?, disabled_at) "
            "WHERE operator_id = ?",
            [refund, manage, deleted, operator_id],
        )


def settle(plan: PrivilegePlan, last_day: int) -> None:
    """Call off the promotions whose clerk another attack's refund used after the grant and
    before a first genuine use: the grant event and the look-alike's label go; the clerk keeps
    the rights it had, and that refund stays a refund without permission."""
    for op, granted, use_day in plan.promotions:
        if use_day >= last_day and any(
            b_op == op and ts >= granted for _seq, b_op, ts in plan.borrowed
        ):
            plan.cancelled.add(op)
    if not plan.cancelled:
        return
    called_off = {(op, granted) for op, granted, _use in plan.promotions if op in plan.cancelled}
    plan.events = [
        e
        for e in plan.events
        if not (e[2] == "granted" and e[3] == "refund" and (e[1], e[0]) in called_off)
    ]
    plan.labels = [
        label
        for label in plan.labels
        if not (label[0] == BENIGN_PREFIX + "promotion" and (label[2], label[3]) in called_off)
    ]


def relabelled(labels: pl.DataFrame, plan: PrivilegePlan) -> pl.DataFrame:
    """``labels`` without the ``refund_without_permission`` labels of refunds other attacks
    made under the number of an operator this plan grants the refund right, at or after the
    grant: the operator held the right then, so such a refund is permitted. A refund before
    the grant was made without the right, and keeps its label (docs/scenarios.md)."""
    granted: dict[int, int] = {}
    for ts, op, kind, permission, _actor, _actor_op in plan.events:
        if kind == "granted" and permission == "refund" and ts >= plan.from_us:
            granted[op] = min(ts, granted.get(op, ts))
    borrowed = sorted({seq for seq, op, ts in plan.borrowed if op in granted and ts >= granted[op]})
    if not borrowed:
        return labels
    return labels.filter(
        ~((pl.col("scenario") == "refund_without_permission") & pl.col("entity").is_in(borrowed))
    )
