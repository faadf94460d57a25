"""The simulation engine: world, PIN timelines and days, written to the store in chunks."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Final

import numpy as np
import polars as pl
import pyarrow as pa

from posaudit import __version__
from posaudit.pins import PinDigester, pin_digester
from posaudit.simulate import (
    fraud,
    ledger_fraud,
    lookalikes,
    merchant_fraud,
    privileges,
    sales_fraud,
)
from posaudit.simulate.catalog import CATEGORY_NAMES
from posaudit.simulate.day import (
    CHANNEL_NAMES,
    DayActivity,
    SimState,
    due_refunds,
    forgotten_pins,
    make_shifts,
    natural_logins,
    natural_transactions,
)
from posaudit.simulate.pinmodel import (
    ACTORS,
    KINDS,
    PinTimeline,
    build_pin_timeline,
    pin_periods,
    pin_text,
    weak_classes,
)
from posaudit.simulate.rng import stream
from posaudit.simulate.scenario import (
    ATTACK_SCENARIOS,
    LOOKALIKE_KINDS,
    SCENARIOS,
    Scenario,
    check_days,
    check_seed,
    scenario_from_text,
)
from posaudit.simulate.world import US_PER_DAY, World, account_of, build_world, day_start_us
from posaudit.store import Store, StoreError
from posaudit.store.catalogue import EVENT_TABLES, key_column

STALE_AFTER_DAYS: Final = 90  # PCI DSS 8.3.9
REUSE_HISTORY: Final = 4  # PCI DSS 8.3.7
SALE_POOL_DAYS: Final = 45
# What the deployment's digester is asked once a simulation, for the key of the account
# reference tokens (:func:`account_ref_key`).
ACCOUNT_REF_KEY_LABEL: Final = "simulated account references"


def account_ref_key(digester: PinDigester) -> np.ndarray:
    """Four 64-bit words of key for :func:`simulated_account_refs`: the deployment key's
    digest of :data:`ACCOUNT_REF_KEY_LABEL`, so that only the key's holder can make them."""
    digest = digester.digests(pl.Series([ACCOUNT_REF_KEY_LABEL]))[0]
    return np.array([int(digest[i : i + 16], 16) for i in range(0, 64, 16)], dtype=np.uint64)


def _mixed(x: np.ndarray) -> np.ndarray:
    # SplitMix64's finaliser: every bit of the input reaches every bit of the output
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def simulated_account_refs(accounts: np.ndarray, key: np.ndarray) -> pl.Series:
    """The account reference token of each simulated account: 64 hex digits, shaped like the
    keyed token ingest makes of a real reference
    (:func:`posaudit.ingest.secrets.account_ref_tokens`).

    A simulated account has no real Payment Account Reference to protect, and a large world
    has millions of accounts: rather than an HMAC each, the token is four keyed SplitMix64
    lanes of the account number (``key``: :func:`account_ref_key`), computed in numpy. The
    same account gives the same token under the same key; nothing in it shows the number.
    """
    with np.errstate(over="ignore"):  # the mixing multiplies modulo 2**64 by design
        lanes = _mixed(_mixed(accounts.astype(np.uint64)[:, None] ^ key[None, :]) + key[None, :])
    raw = np.ascontiguousarray(lanes.astype(">u8"))
    digests = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(32), accounts.size, [None, pa.py_buffer(raw)]
    )
    binary = pl.Series("account_ref", digests.cast(pa.binary()))
    return binary.bin.encode("hex")


Progress = Callable[[int, int, int], None]


@dataclass
class SimulationSummary:
    path: Path
    seed: int
    first_day: int
    days: int
    start: date
    rows: dict[str, int] = field(default_factory=dict)
    incidents: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    write_seconds: float = 0.0  # time the writer thread spent in DuckDB
    wait_seconds: float = 0.0  # time generation waited for the writer

    @property
    def events(self) -> int:
        return sum(self.rows.get(table, 0) for table in EVENT_TABLES)


def _ts(values: np.ndarray | pl.Series) -> pl.Series:
    return pl.Series(values, dtype=pl.Int64).cast(pl.Datetime("us"))


class _Renderer:
    """Turns integer-coded rows into the contract's strings; holds the id counters."""

    def __init__(self, world: World, seed: int, counters: dict[str, int], digester: PinDigester):
        self.world = world
        self.t_ids = pl.Series(world.t_ids)
        self.m_ids = pl.Series(world.merchants.get_column("merchant_id"))
        self.o_ids = pl.Series(world.o_ids)
        self.channels = pl.Series(CHANNEL_NAMES, dtype=pl.Enum(CHANNEL_NAMES))
        self.counters = counters
        self.batch_base = stream(seed, "world", 1).integers(1, 500, world.n_terminals)
        self.digester = digester
        self._digests: dict[int, str] = {}
        self._account_key: np.ndarray | None = None
        self.fee_plan: ledger_fraud.FeePlan | None = None  # merchants billed wrongly

    def _ids(self, prefix: str, count: int) -> pl.Series:
        start = self.counters[prefix]
        self.counters[prefix] += count
        return pl.select(
            pl.lit(prefix) + pl.int_range(start, start + count, dtype=pl.Int64).cast(pl.String)
        ).to_series()

    def transactions(self, txns: pl.DataFrame, state: SimState, world_day: int) -> pl.DataFrame:
        world = self.world
        txns = txns.sort("terminal", "ts", "seq")
        term = txns.get_column("terminal").to_numpy()
        rank = txns.select(pl.int_range(1, pl.len() + 1).over("terminal")).to_series().to_numpy()
        trace = state.trace[term] + rank
        np.maximum.at(state.trace, term, trace)
        trace = (trace - 1) % 999_999 + 1  # six-digit trace numbers wrap
        merchant = world.t_merchant[term]
        channel = txns.get_column("channel").to_numpy()
        amount = txns.get_column("amount").to_numpy()
        bp = np.where(
            world.m_fee_class[merchant] == 2,
            0,
            np.where(
                world.m_fee_class[merchant] == 1,
                world.m_rate_bp[merchant],
                np.append(CHANNEL_RATE_BP, 0)[channel],
            ),
        )
        bp = np.where(channel == 5, 0, bp)
        fee = (amount * bp + 5_000) // 10_000
        fee = np.where(channel == 0, np.minimum(fee, DEBIT_CAP_FEN), fee)
        kind = txns.get_column("kind").to_physical().to_numpy()  # 0 sale, 1 void
        approved = txns.get_column("status").to_physical().to_numpy() == 0
        if self.fee_plan is not None:
            fee = self.fee_plan.charge(
                fee,
                merchant=merchant,
                channel=channel,
                amount=amount,
                chargeable=((kind == 0) & approved) | (kind == 1),
                ts=txns.get_column("ts").to_numpy(),
            )
        fee = np.where((kind == 0) & approved, fee, np.where(kind == 1, -fee, 0))
        seq = txns.get_column("seq")
        original = txns.get_column("original")
        card = txns.get_column("card")
        prefix = np.where(channel < 2, "C", np.where(channel == 5, "A", "Q"))
        account_ref = self.account_refs(card.to_numpy(), is_card=channel < 2)
        return pl.DataFrame(
            {
                "txn_id": pl.select(pl.lit("X") + seq.cast(pl.String)).to_series(),
                "ts": _ts(txns.get_column("ts")),
                "terminal_id": self.t_ids.gather(term),
                "merchant_id": self.m_ids.gather(merchant),
                "operator_id": self.o_ids.gather(txns.get_column("operator")),
                "kind": txns.get_column("kind"),
                "channel": self.channels.gather(channel),
                "amount_fen": amount,
                "fee_fen": fee,
                "card_token": pl.select(pl.Series(prefix) + card.cast(pl.String)).to_series(),
                "account_ref": account_ref,
                "original_txn_id": pl.select(
                    pl.when(original >= 0)
                    .then(pl.lit("X") + original.cast(pl.String))
                    .when(original == -2)
                    .then(pl.lit("X") + (seq + 7_000_000_000_000).cast(pl.String))
                ).to_series(),
                "trace_no": pl.Series(trace, dtype=pl.Int32),
                "batch_no": pl.Series(self.batch_base[term] + world_day, dtype=pl.Int32),
                "status": txns.get_column("status"),
                "failure_reason": txns.get_column("failure"),
            }
        )

    def logins(self, logins: pl.DataFrame) -> pl.DataFrame:
        logins = logins.sort("ts", "terminal", "operator_no", "outcome")
        op = logins.get_column("operator")
        return pl.DataFrame(
            {
                "event_id": self._ids("L", logins.height),
                "ts": _ts(logins.get_column("ts")),
                "terminal_id": self.t_ids.gather(logins.get_column("terminal")),
                "operator_no": logins.get_column("operator_no"),
                "operator_id": self.o_ids.gather(op.clip(0)).zip_with(
                    op >= 0, pl.Series([None], dtype=pl.String)
                ),
                "outcome": logins.get_column("outcome"),
            }
        )

    def lockouts(self, lockouts: pl.DataFrame) -> pl.DataFrame:
        lockouts = lockouts.sort("locked_at", "terminal", "operator")
        return pl.DataFrame(
            {
                "lockout_id": self._ids("K", lockouts.height),
                "terminal_id": self.t_ids.gather(lockouts.get_column("terminal")),
                "operator_id": self.o_ids.gather(lockouts.get_column("operator")),
                "locked_at": _ts(lockouts.get_column("locked_at")),
                "unlocked_at": _ts(lockouts.get_column("unlocked_at")),
                "unlock_method": lockouts.get_column("unlock_method"),
            }
        )

    def account_refs(self, cards: np.ndarray, *, is_card: np.ndarray) -> pl.Series:
        """The account reference token of each card transaction (null for QR codes and
        transfers), the same for every card of the account: :func:`simulated_account_refs`
        of the card's account."""
        if self._account_key is None:
            self._account_key = account_ref_key(self.digester)
        accounts = pl.DataFrame({"account": account_of(cards), "is_card": is_card})
        distinct = accounts.filter("is_card").select(pl.col("account").unique())
        tokens = distinct.with_columns(
            simulated_account_refs(distinct.get_column("account").to_numpy(), self._account_key)
        )
        return (
            accounts.join(tokens, on="account", how="left", maintain_order="left")
            .select(pl.when("is_card").then("account_ref").alias("account_ref"))
            .to_series()
        )

    def digests(self, pins: pl.Series) -> pl.Series:
        """The digest of each PIN; the digester is asked once a batch, for PINs not seen yet."""
        values = pins.cast(pl.Int64).to_list()
        new = sorted(set(values).difference(self._digests))
        if new:
            digests = self.digester.digests(
                pl.Series([pin_text(pin) for pin in new], dtype=pl.String)
            )
            self._digests.update(zip(new, digests.to_list(), strict=True))
        return pl.Series([self._digests[pin] for pin in values], dtype=pl.String)

    def pin_events(self, events: pl.DataFrame) -> pl.DataFrame:
        events = events.sort("ts", "op")
        return pl.DataFrame(
            {
                "event_id": self._ids("P", events.height),
                "ts": _ts(events.get_column("ts")),
                "operator_id": self.o_ids.gather(events.get_column("op")),
                "kind": pl.Series(KINDS).gather(events.get_column("kind")),
                "pin_digest": self.digests(events.get_column("pin")),
                "actor": pl.Series(ACTORS).gather(events.get_column("actor")),
            }
        )

    def operator_events(self, plan: privileges.PrivilegePlan, lower_us: int) -> pl.DataFrame:
        events = privileges.operator_events_frame(plan, self.o_ids, lower_us)
        return pl.DataFrame({"event_id": self._ids("O", events.height)}).hstack(events)

    def ground_truth(self, labels: pl.DataFrame) -> pl.DataFrame:
        labels = labels.sort("scenario", "entity_type", "entity", "start")
        etype = labels.get_column("entity_type")
        entity = labels.get_column("entity")
        ids = pl.select(
            pl.when(etype == "operator")
            .then(self.o_ids.gather(entity.clip(0, self.o_ids.len() - 1)))
            .when(etype == "terminal")
            .then(self.t_ids.gather(entity.clip(0, self.t_ids.len() - 1)))
            .when(etype == "merchant")
            .then(self.m_ids.gather(entity.clip(0, self.m_ids.len() - 1)))
            .otherwise(pl.lit("X") + entity.cast(pl.String))
        ).to_series()
        return pl.DataFrame(
            {
                "incident_id": self._ids("G", labels.height),
                "scenario": labels.get_column("scenario"),
                "entity_type": etype,
                "entity_id": ids,
                "start_ts": _ts(labels.get_column("start")),
                "end_ts": _ts(labels.get_column("end")),
            }
        )


from posaudit.simulate.catalog import CHANNEL_RATE_BP, DEBIT_CAP_FEN  # noqa: E402

LABEL_SCHEMA: Final = {
    "scenario": pl.String,
    "entity_type": pl.String,
    "entity": pl.Int64,
    "start": pl.Int64,
    "end": pl.Int64,
}


def condition_labels(
    world: World, periods: pl.DataFrame, scenario: Scenario, from_us: int, to_us: int
) -> pl.DataFrame:
    """Ground truth of the PIN and lockout conditions over [from_us, to_us), from plaintext
    state."""
    in_window = periods.filter((pl.col("end") > from_us) & (pl.col("start") < to_us))
    ops = in_window.get_column("op").to_numpy()
    in_window = in_window.with_columns(
        pl.Series("weakness", weak_classes(world, ops, in_window.get_column("pin").to_numpy()))
    )
    out: list[pl.DataFrame] = []

    def add(name: str, frame: pl.DataFrame, etype: str = "operator") -> None:
        if scenario.rate(name) >= 0 and scenario.settings["scenarios"][name]["enabled"]:
            out.append(
                frame.select(
                    pl.lit(name).alias("scenario"),
                    pl.lit(etype).alias("entity_type"),
                    pl.col("entity").cast(pl.Int64),
                    pl.col("start").cast(pl.Int64),
                    pl.col("end").cast(pl.Int64),
                )
            )

    add(
        "weak_pin",
        in_window.filter(pl.col("weakness") != "-").select(
            pl.col("op").alias("entity"), "start", "end"
        ),
    )
    add(
        "default_pin",
        in_window.filter(
            (pl.col("kind") == 0) & (pl.col("actor") == 3) & (pl.col("end") == to_us)
        ).select(pl.col("op").alias("entity"), "start", "end"),
    )
    history = in_window.sort("op", "start").with_columns(
        pl.concat_list(
            [
                pl.col("pin").shift(steps_back).over("op")
                for steps_back in range(1, REUSE_HISTORY + 1)
            ]
        ).alias("earlier")
    )
    # earlier periods outside the window count too: compute the history on all periods
    full = periods.sort("op", "start").with_columns(
        pl.concat_list(
            [
                pl.col("pin").shift(steps_back).over("op")
                for steps_back in range(1, REUSE_HISTORY + 1)
            ]
        ).alias("earlier")
    )
    del history
    reused = full.filter(
        (pl.col("end") > from_us)
        & (pl.col("start") < to_us)
        & (pl.col("kind") > 0)
        & pl.col("pin").is_in(pl.col("earlier"))
    )
    add("reused_pin", reused.select(pl.col("op").alias("entity"), "start", "end"))
    stale_from = pl.col("start") + STALE_AFTER_DAYS * US_PER_DAY
    add(
        "stale_pin",
        in_window.filter(
            (pl.col("end") - pl.col("start") > STALE_AFTER_DAYS * US_PER_DAY)
            & (pl.col("end") > stale_from)
        ).select(pl.col("op").alias("entity"), stale_from.alias("start"), "end"),
    )
    pairs = (
        in_window.select("op", "merchant", "pin", "start", "end")
        .join(
            in_window.select("op", "merchant", "pin", "start", "end"),
            on=["merchant", "pin"],
            suffix="_other",
        )
        .filter(
            (pl.col("op") != pl.col("op_other"))
            & (pl.col("start") < pl.col("end_other"))
            & (pl.col("start_other") < pl.col("end"))
        )
    )
    shared = (
        pairs.select(
            pl.col("op").alias("entity"),
            pl.max_horizontal("start", "start_other").alias("start"),
            pl.min_horizontal("end", "end_other").alias("end"),
        )
        .unique()
        .sort("entity", "start")
    )
    add("shared_pin", shared)
    loose = np.flatnonzero(world.t_loose)
    add(
        "lockout_not_enforced",
        pl.DataFrame({"entity": loose, "start": from_us, "end": to_us - 1}),
        "terminal",
    )
    if not out:
        return pl.DataFrame(schema=LABEL_SCHEMA)
    labels = pl.concat(out)
    # a condition lasting to the end of the world ends with its last instant
    return labels.with_columns(pl.min_horizontal("end", pl.lit(to_us - 1)).alias("end"))


def _world_for(scenario: Scenario, seed: int) -> World:
    behaviour = scenario.behaviour
    return build_world(
        seed,
        scenario.merchants,
        scenario.start,
        lockout_loose_share=scenario.rate("lockout_not_enforced"),
        flaky_share=behaviour["flaky_terminal_share"],
        transfer_share=behaviour["transfer_merchant_share"],
    )


def _pin_timeline(world: World, scenario: Scenario, seed: int, to_us: int) -> PinTimeline:
    return build_pin_timeline(
        world,
        seed,
        to_us,
        weak_share=scenario.rate("weak_pin"),
        default_share=scenario.rate("default_pin"),
        shared_share=scenario.rate("shared_pin"),
        reused_share=scenario.rate("reused_pin"),
        stale_share=scenario.rate("stale_pin"),
        forgotten_per_year=scenario.behaviour["forgotten_pins_per_operator_year"],
    )


def world_pins(path: Path) -> dict[str, frozenset[str]]:
    """Every PIN the simulator gave each operator of the world in the store at ``path``, as
    its digits (six, or the four or eight of a common default), by operator id.

    The store holds digests only; the PINs are drawn again in memory from the world's seed
    and scenario, as :func:`simulate` drew them, and written nowhere. For the checks that no
    plaintext PIN reaches a table, a file or a log. Raises :class:`StoreError` for a store
    without a simulated world.
    """
    store = Store.open(Path(path), read_only=True)
    try:
        runs = store.frame(
            "SELECT seed, CAST(start_date AS VARCHAR) AS start_date, merchants, scenario_toml, "
            "first_day, days, fraud FROM simulations ORDER BY simulation_id"
        )
    finally:
        store.close()
    if runs.is_empty():
        msg = f"{path} holds no simulated world"
        raise StoreError(msg)
    held: dict[str, set[str]] = {}
    taken: frozenset[str] = frozenset()
    for seed, start, merchants, text, first_day, days, fraud_on in runs.iter_rows():
        scenario = scenario_from_text(text, merchants=merchants, days=days, start=start)
        world = _world_for(scenario, seed)
        to_us = day_start_us(world, first_day + days)
        plan = privileges.plan_privileges(
            world,
            scenario,
            seed,
            first_day=first_day,
            days=days,
            fraud_on=fraud_on,
            timeline=_pin_timeline(world, scenario, seed, to_us),
            taken=taken,
        )
        lower = -(2**62) if first_day == 0 else day_start_us(world, first_day)
        pins = plan.pin_frame().filter((pl.col("ts") >= lower) & (pl.col("ts") < to_us))
        ids = pl.Series(plan.all_ids())
        taken = taken | frozenset(ids.to_list())
        for operator, pin in zip(
            ids.gather(pins.get_column("op")).to_list(),
            pins.get_column("pin").to_list(),
            strict=True,
        ):
            held.setdefault(operator, set()).add(pin_text(pin))
    return {operator: frozenset(pins) for operator, pins in held.items()}


def continued_scenario(path: Path, days: int) -> Scenario:
    """The scenario ``simulate(path, ..., append=True)`` would run: the store's own world for
    ``days`` more days (read-only; for the estimate before an append)."""
    if not Path(path).exists():
        msg = f"--append needs an existing store, and {path} does not exist"
        raise StoreError(msg)
    store = Store.open(path, read_only=True)
    try:
        rows = store.query(
            "SELECT start_date, merchants, scenario_toml, first_day + days FROM simulations "
            "ORDER BY simulation_id DESC LIMIT 1"
        )
    finally:
        store.close()
    if not rows:
        msg = f"{path} holds no simulated world to append to"
        raise StoreError(msg)
    start, merchants, text, first_day = rows[0]
    check_days(start, int(first_day), days, source=f"--append to {path}")  # type: ignore[arg-type,call-overload]
    return scenario_from_text(str(text), merchants=int(merchants), days=days, start=str(start))  # type: ignore[call-overload]


def _next_number(store: Store, table: str, column: str) -> int:
    """The number after the highest of ``column``'s ids (a letter, then digits); 0 when none."""
    found = store.query(
        f"SELECT coalesce(max(CAST(substr({column}, 2) AS BIGINT)), -1) + 1 FROM {table}"
    )
    return int(found[0][0])  # type: ignore[call-overload]


def simulate(
    path: Path,
    scenario: Scenario,
    *,
    seed: int,
    fraud_on: bool = True,
    append: bool = False,
    parquet_dir: Path | None = None,
    progress: Progress | None = None,
    digester: PinDigester | None = None,
) -> SimulationSummary:
    """Simulate ``scenario`` into the store at ``path`` in one transaction.

    With ``append`` the store's own world (seed, size, scenario) continues for
    ``scenario.days`` more days. Raises :class:`StoreError` for an unusable store.
    ``digester``: the PIN key's, else :func:`posaudit.pins.pin_digester`'s.
    """
    started = time.perf_counter()
    check_seed(seed)
    digester = pin_digester() if digester is None else digester
    fingerprint = digester.fingerprint
    path = Path(path)
    if path.exists() and not append:
        msg = f"{path} already holds a world: add --append to continue it, or choose a new --db"
        raise StoreError(msg)
    if append and not path.exists():
        msg = f"--append needs an existing store, and {path} does not exist"
        raise StoreError(msg)
    created = not append
    # Each day commits on its own, so memory stays flat however many days; the staged copy
    # keeps the whole simulation all-or-nothing for the store at `path`.
    with Store.staged(path, append=append) as store:
        first_day = 0
        counters = {"L": 0, "K": 0, "P": 0, "G": 0, "O": 0}
        next_txn = 0
        if append:
            store.check_pin_key(fingerprint)
            rows = store.query(
                "SELECT seed, start_date, merchants, scenario_toml, first_day + days, fraud "
                "FROM simulations ORDER BY simulation_id DESC LIMIT 1"
            )
            if not rows:
                msg = f"{path} holds no simulated world to append to"
                raise StoreError(msg)
            seed, start, merchants, text, first_day, fraud_on = rows[0]  # type: ignore[assignment]
            days = scenario.days
            check_days(start, int(first_day), days, source=f"--append to {path}")  # type: ignore[arg-type]
            scenario = scenario_from_text(
                str(text), merchants=int(merchants), days=days, start=str(start)
            )  # type: ignore[call-overload]
            for prefix, table in (
                ("L", "login_events"),
                ("K", "lockouts"),
                ("P", "pin_events"),
                ("G", "ground_truth"),
                ("O", "operator_events"),
            ):
                counters[prefix] = _next_number(store, table, key_column(table))
            next_txn = _next_number(store, "transactions", key_column("transactions"))
        world = _world_for(scenario, int(seed))
        summary = SimulationSummary(
            path=path,
            seed=int(seed),
            first_day=int(first_day),
            days=scenario.days,
            start=scenario.start,
        )
        state = SimState(
            next_txn=next_txn,
            trace=stream(int(seed), "world", 2).integers(0, 5_000, world.n_terminals),
        )
        if append:
            _restore_state(store, world, state)
        renderer = _Renderer(world, int(seed), counters, digester)
        behaviour = scenario.behaviour
        end_day = int(first_day) + scenario.days
        from_us = day_start_us(world, int(first_day))
        to_us = day_start_us(world, end_day)
        timeline = _pin_timeline(world, scenario, int(seed), to_us)
        pin_frame = pl.DataFrame(
            {
                "op": timeline.operator,
                "ts": timeline.ts_us,
                "kind": timeline.kind,
                "actor": timeline.actor,
                "pin": timeline.pin,
            }
        )
        resets = pin_frame.filter(
            (pl.col("kind") == 2) & (pl.col("ts") >= from_us) & (pl.col("ts") < to_us)
        )
        taken = (
            frozenset(store.frame("SELECT operator_id FROM operators").get_column("operator_id"))
            if append
            else frozenset()
        )
        privilege_plan = privileges.plan_privileges(
            world,
            scenario,
            int(seed),
            first_day=int(first_day),
            days=scenario.days,
            fraud_on=bool(fraud_on),
            timeline=timeline,
            taken=taken,
            refund_held=frozenset(
                store.frame("SELECT operator_id FROM operators WHERE can_refund")
                .get_column("operator_id")
                .to_list()
            )
            if append
            else frozenset(),
        )
        timeline = privilege_plan.timeline
        pin_frame = privilege_plan.pin_frame()
        renderer.o_ids = pl.Series(privilege_plan.all_ids())
        rates = {name: scenario.rate(name, fraud=bool(fraud_on)) for name in SCENARIOS}
        evasion = {name: scenario.evasion(name) for name in ATTACK_SCENARIOS}
        benign = {kind: scenario.lookalike_rate(kind) for kind in LOOKALIKE_KINDS}
        phase_rng = stream(int(seed), "fraud", int(first_day))
        # rounding to the nearest whole incident keeps small worlds on the configured rate
        phases = dict.fromkeys(SCENARIOS, 0.5)
        friendly = fraud.plan_friendly_refunds(
            world, phase_rng, state, rates["friendly_refunds"], int(first_day), scenario.days
        )
        merchant_plan = merchant_fraud.plan_merchants(
            world,
            stream(int(seed), "merchant_plan", int(first_day)),
            state,
            rates=rates,
            evasion=evasion,
            benign=benign,
            first_day=int(first_day),
            days=scenario.days,
        )
        labels: list[pl.DataFrame] = []
        counts = {table: 0 for table in EVENT_TABLES}
        renderer.fee_plan = ledger_fraud.plan_fee_errors(
            world,
            stream(int(seed), "ledger-fees", int(first_day)),
            rates["fee_misapplied"],
            evasion["fee_misapplied"],
        )
        if created:
            store.initialise(pin_key_fingerprint=fingerprint, code_version=__version__)
        if created:
            store.append("merchants", world.merchants)
            store.append("terminals", world.terminals)
            store.append("operators", privilege_plan.operators(world.operators))
        else:
            privileges.update_operators(store, privilege_plan, taken)
        with store.background_writer() as writer:
            for day_number, day in enumerate(range(int(first_day), end_day)):
                day_rng = stream(int(seed), "day", day)
                activity = DayActivity()
                shifts = make_shifts(world, day, day_rng, behaviour["roaming_share"])
                flaky_today = world.t_flaky & (
                    day_rng.random(world.n_terminals) < behaviour["flaky_day_share"]
                )
                natural_logins(world, shifts, day_rng, activity.logins, behaviour, flaky_today)
                day_resets = resets.filter(
                    (pl.col("ts") >= day_start_us(world, day))
                    & (pl.col("ts") < day_start_us(world, day + 1))
                )
                forgotten_pins(world, day_resets, day_rng, activity.logins)
                txns, sales = natural_transactions(world, day, shifts, day_rng, state, behaviour)
                txns, sales = merchant_fraud.silence(state, day, txns, sales)
                activity.txns.append(txns)
                ctx = fraud.DayContext(
                    world,
                    day,
                    stream(int(seed), "fraud", day, 1),
                    state,
                    shifts,
                    sales,
                    activity,
                    evasion=evasion,
                )
                fraud.inject_day(ctx, rates, phases)
                if any(benign.values()):  # off: not a single random draw more
                    ctx.rng = stream(int(seed), "lookalike", day)
                    lookalikes.inject_day(ctx, benign, end_day)
                if rates["duplicate_transactions"] > 0 or any(
                    benign[kind] for kind in ledger_fraud.LOOKALIKES
                ):  # off: not a single random draw more
                    ctx.rng = stream(int(seed), "ledger", day)
                    ledger_fraud.inject_day(ctx, rates, benign)
                ctx.rng = stream(int(seed), "privileges", day)
                privileges.inject_day(ctx, privilege_plan)
                sales_fraud.inject_day(ctx, rates, benign, seed=int(seed))
                ctx.rng = stream(int(seed), "merchants", day)
                merchant_fraud.inject_day(ctx)
                activity.txns.append(due_refunds(state, day_start_us(world, day + 1)))
                _remember_sales(
                    state,
                    sales,
                    day_start_us(world, day) - SALE_POOL_DAYS * US_PER_DAY,
                    day_rng,
                    not_refunded=ctx.unused,
                )
                logins, lockouts = fraud.log_frames(activity.logins)
                day_txns, logins, lockouts = merchant_fraud.quiet(
                    world, state, day, pl.concat(activity.txns), logins, lockouts, activity.labels
                )
                tx = renderer.transactions(day_txns, state, day)
                bt = ledger_fraud.batch_totals(tx)  # what the terminals counted
                if rates["deleted_records"] > 0:
                    ctx.rng = stream(int(seed), "ledger", day, 2)
                    tx = ledger_fraud.deleted_records(
                        ctx, tx, renderer.t_ids, rates["deleted_records"]
                    )
                writer.put("batch_totals", bt)
                counts["batch_totals"] += bt.height
                lg = renderer.logins(logins)
                lk = renderer.lockouts(lockouts)
                writer.put("transactions", tx)
                writer.put("login_events", lg)
                writer.put("lockouts", lk)
                counts["transactions"] += tx.height
                counts["login_events"] += lg.height
                counts["lockouts"] += lk.height
                if activity.labels:
                    labels.append(pl.DataFrame(activity.labels, schema=LABEL_SCHEMA, orient="row"))
                if progress:
                    progress(day_number + 1, scenario.days, sum(counts.values()))
            lower = -(2**62) if not append else from_us
            pe = renderer.pin_events(
                pin_frame.filter((pl.col("ts") >= lower) & (pl.col("ts") < to_us))
            )
            writer.put("pin_events", pe)
            counts["pin_events"] += pe.height
            privileges.settle(privilege_plan, end_day)
            oe = renderer.operator_events(privilege_plan, lower)
            writer.put("operator_events", oe)
            counts["operator_events"] += oe.height
        # the rights the days granted (an attack's grant is placed on its day) and deletions
        privileges.update_operators(store, privilege_plan, frozenset(privilege_plan.all_ids()))
        summary.write_seconds = writer.busy_seconds
        summary.wait_seconds = writer.wait_seconds
        if renderer.fee_plan is not None and renderer.fee_plan.labels():
            labels.append(
                pl.DataFrame(renderer.fee_plan.labels(), schema=LABEL_SCHEMA, orient="row")
            )
        periods = pin_periods(world, timeline, to_us)
        labels.append(condition_labels(world, periods, scenario, from_us, to_us))
        if friendly:
            labels.append(
                pl.DataFrame(
                    [("friendly_refunds", "operator", *incident) for incident in friendly],
                    schema=LABEL_SCHEMA,
                    orient="row",
                )
            )
        if privilege_plan.labels:
            labels.append(pl.DataFrame(privilege_plan.labels, schema=LABEL_SCHEMA, orient="row"))
        merchant_labels = merchant_fraud.plan_labels(merchant_plan)
        if merchant_labels:
            labels.append(pl.DataFrame(merchant_labels, schema=LABEL_SCHEMA, orient="row"))
        gt = renderer.ground_truth(privileges.relabelled(pl.concat(labels), privilege_plan))
        store.append("ground_truth", gt)
        summary.rows = dict(counts) | {"ground_truth": gt.height}
        if created:
            summary.rows |= {
                "merchants": world.merchants.height,
                "terminals": world.terminals.height,
                "operators": world.operators.height,
            }
        summary.incidents = dict(
            gt.group_by("scenario").len().sort("scenario").iter_rows()  # type: ignore[arg-type]
        )
        summary.seconds = time.perf_counter() - started
        sim_id = int(
            store.query("SELECT coalesce(max(simulation_id), 0) + 1 FROM simulations")[0][0]
        )  # type: ignore[arg-type]
        store.execute(
            "INSERT INTO simulations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                sim_id,
                datetime.now().replace(microsecond=0),
                int(seed),
                scenario.start,
                int(first_day),
                scenario.days,
                scenario.merchants,
                bool(fraud_on),
                scenario.text,
                summary.events,
                round(summary.seconds, 3),
                __version__,
            ],
        )
        if parquet_dir is not None:
            store.export_parquet(parquet_dir)
    summary.seconds = time.perf_counter() - started
    return summary


def _remember_sales(
    state: SimState,
    sales: pl.DataFrame,
    keep_from_us: int,
    rng: np.random.Generator,
    *,
    not_refunded: Callable[[pl.DataFrame], pl.DataFrame],
) -> None:
    """Keep a sample of recent approved sales: what late refunds can still name.

    ``not_refunded`` drops the sales an injection refunded today: a sale refunded in full is
    not refunded again. The sample is drawn first, so the day's random draws stay the same.
    """
    sample = not_refunded(
        sales.filter(pl.Series(rng.random(sales.height) < 0.05)).select(state.sale_pool.columns)
    )
    state.sale_pool = pl.concat([state.sale_pool.filter(pl.col("ts") >= keep_from_us), sample])


def _restore_state(store: Store, world: World, state: SimState) -> None:
    """Trace counters and recent sales from the store, to continue its world."""
    frame = store.frame("SELECT terminal_id, max(trace_no) AS trace FROM transactions GROUP BY ALL")
    index = {terminal_id: terminal for terminal, terminal_id in enumerate(world.t_ids.tolist())}
    for terminal_id, trace in frame.iter_rows():
        state.trace[index[terminal_id]] = int(trace)
    recent = store.frame(
        "SELECT CAST(substr(txn_id, 2) AS BIGINT) AS seq, epoch_us(ts) AS ts, terminal_id, "
        "channel::VARCHAR AS channel, amount_fen AS amount, "
        "CAST(substr(card_token, 2) AS BIGINT) AS card FROM transactions "
        "WHERE kind = 'sale' AND status = 'approved' AND channel <> 'account' "
        f"AND ts >= (SELECT max(ts) FROM transactions) - INTERVAL {SALE_POOL_DAYS} DAY "
        "USING SAMPLE 5 PERCENT (bernoulli, 7)"
    )
    channel_index = {channel: code for code, channel in enumerate(CHANNEL_NAMES)}
    state.sale_pool = recent.select(
        "seq",
        "ts",
        pl.col("terminal_id").replace_strict(index, return_dtype=pl.Int64).alias("terminal"),
        pl.col("channel").replace_strict(channel_index, return_dtype=pl.Int64).alias("channel"),
        "amount",
        "card",
    ).sort("seq")


__all__ = ["CATEGORY_NAMES", "SimulationSummary", "simulate"]
