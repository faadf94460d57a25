"""Login attempt sequences that follow a terminal's own lockout setting exactly."""

from __future__ import annotations

from dataclasses import dataclass, field

from posaudit.simulate.world import US_PER_MINUTE


@dataclass
class LoginLog:
    """Login events and lockouts built one sequence at a time (few rows: Python is fine)."""

    ts: list[int] = field(default_factory=list)
    terminal: list[int] = field(default_factory=list)
    operator_no: list[str] = field(default_factory=list)
    operator: list[int] = field(default_factory=list)  # -1: no such operator
    outcome: list[str] = field(default_factory=list)
    lock_terminal: list[int] = field(default_factory=list)
    lock_operator: list[int] = field(default_factory=list)
    locked_at: list[int] = field(default_factory=list)
    unlocked_at: list[int] = field(default_factory=list)
    unlock_method: list[str] = field(default_factory=list)

    def event(self, ts: int, terminal: int, operator_no: str, operator: int, outcome: str) -> None:
        self.ts.append(ts)
        self.terminal.append(terminal)
        self.operator_no.append(operator_no)
        self.operator.append(operator)
        self.outcome.append(outcome)

    def lockout(
        self, terminal: int, operator: int, locked_at: int, unlocked_at: int, method: str
    ) -> None:
        self.lock_terminal.append(terminal)
        self.lock_operator.append(operator)
        self.locked_at.append(locked_at)
        self.unlocked_at.append(unlocked_at)
        self.unlock_method.append(method)


def guessing_run(
    log: LoginLog,
    *,
    start_us: int,
    terminal: int,
    operator: int,
    operator_no: str,
    threshold: int,
    lockout_minutes: int,
    failures: int,
    gaps_us: list[int],
    succeed: bool,
    unlock_method: str = "timeout",
    unlock_delay_us: int = 0,
    locked_tries: int = 1,
) -> int:
    """Wrong PINs (``failures`` of them), lockouts as the terminal's setting says, then an
    optional success. Attempts during a lock are logged ``locked``; after each unlock the
    counter starts again. Returns the time of the last attempt.

    ``threshold`` <= 0 means the terminal never locks. The first lockout is lifted by
    ``unlock_method`` (after ``unlock_delay_us`` unless by timeout); later ones time out.
    """
    attempt_us = start_us
    failures_in_a_row = 0
    failures_logged = 0
    gaps_taken = 0

    def next_gap() -> int:
        nonlocal gaps_taken
        gap = gaps_us[gaps_taken % len(gaps_us)]
        gaps_taken += 1
        return gap

    method = unlock_method
    while failures_logged < failures:
        log.event(attempt_us, terminal, operator_no, operator, "wrong_pin")
        failures_logged += 1
        failures_in_a_row += 1
        if threshold > 0 and failures_in_a_row == threshold:
            if method == "timeout":
                unlock_at = attempt_us + lockout_minutes * US_PER_MINUTE
            else:
                unlock_at = attempt_us + min(
                    unlock_delay_us, lockout_minutes * US_PER_MINUTE - US_PER_MINUTE
                )
            log.lockout(terminal, operator, attempt_us, unlock_at, method)
            method = "timeout"
            for locked_try in range(locked_tries):
                locked_attempt_us = attempt_us + (locked_try + 1) * next_gap()
                if locked_attempt_us < unlock_at:
                    log.event(locked_attempt_us, terminal, operator_no, operator, "locked")
            attempt_us = unlock_at + next_gap()
            failures_in_a_row = 0
        else:
            attempt_us += next_gap()
    if succeed:
        log.event(attempt_us, terminal, operator_no, operator, "success")
        return attempt_us
    return attempt_us - gaps_us[(gaps_taken - 1) % len(gaps_us)]
