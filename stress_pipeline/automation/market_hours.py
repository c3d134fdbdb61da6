"""US market hours from the exchange calendar: when the hourly lite run is due, and market time elapsed.

The hourly lite stress runs while the New York Stock Exchange trades: Monday to Friday, 09:30-16:00
America/New_York, no run on an exchange holiday, none after an early close (13:00 on the day after
Thanksgiving, Christmas Eve, ...). Holidays and early closes come from the ``exchange_calendars``
package (calendar ``XNYS``), never from a list kept here. Times are compared as UTC instants, so the
daylight-saving changes of March and November move the UTC times of the slots and nothing else.

Slots: the open, then every whole hour after it, while the session is open (09:30, 10:00, ...,
15:00; on a 13:00 early close 09:30 to 12:00). Cron cannot say ":00:05", so a slot's run applies
``LITE_OFFSET_S`` itself: it starts its work no earlier than the slot plus the offset
(:func:`lite_not_before`), after the bars of the hour that just closed have arrived.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd

from stress_pipeline.market.calendars import exchange_calendar

#: The exchange whose sessions gate the lite run (exchange_calendars code of the NYSE).
EXCHANGE = "XNYS"
MARKET_TIMEZONE = ZoneInfo("America/New_York")
#: Seconds after a slot at which its run does its work (the ":00:05" cron cannot say).
LITE_OFFSET_S = 5.0
#: Market time without a successful lite run after which the stale-lite sensor alerts.
LITE_MAX_AGE = timedelta(hours=2)


@dataclass(frozen=True)
class Session:
    """One trading day of the exchange: its open and close as UTC instants."""

    day: date
    open: datetime
    close: datetime
    early_close: bool

    def contains(self, moment: datetime) -> bool:
        return self.open <= moment < self.close


@dataclass(frozen=True)
class SlotDecision:
    """Whether the lite run is due at ``moment``, and why (the text a skipped tick shows)."""

    moment: datetime
    due: bool
    reason: str
    session: Session | None


def session_on(day: date, exchange: str = EXCHANGE) -> Session | None:
    """The session of ``day`` (a New York calendar day), or None when the exchange does not trade."""
    calendar = _calendar(exchange, day.year)
    label = pd.Timestamp(day)
    if not calendar.is_session(label):
        return None
    return Session(
        day=day,
        open=calendar.session_open(label).to_pydatetime(),
        close=calendar.session_close(label).to_pydatetime(),
        early_close=bool(label in calendar.early_closes),
    )


def lite_slot(moment: datetime, exchange: str = EXCHANGE) -> SlotDecision:
    """Whether the hourly lite run is due at ``moment`` (an aware datetime): inside a session, else why not."""
    moment = _aware(moment)
    local = moment.astimezone(MARKET_TIMEZONE)
    day = local.date()
    session = session_on(day, exchange)
    stamp = local.strftime("%Y-%m-%d %H:%M %Z")
    if session is None:
        closed = holiday_name(day, exchange) or ("weekend" if local.weekday() >= 5 else "no session")
        return SlotDecision(moment, False, f"{stamp}: {exchange} closed ({closed})", None)
    close_text = session.close.astimezone(MARKET_TIMEZONE).strftime("%H:%M")
    if moment < session.open:
        return SlotDecision(moment, False, f"{stamp}: before the open", session)
    if moment >= session.close:
        which = "the early close" if session.early_close else "the close"
        return SlotDecision(moment, False, f"{stamp}: after {which} at {close_text}", session)
    return SlotDecision(moment, True, f"{stamp}: {exchange} open until {close_text}", session)


def lite_slots(day: date, exchange: str = EXCHANGE) -> list[datetime]:
    """The slots of ``day`` as UTC instants: the open, then each whole hour before the close."""
    session = session_on(day, exchange)
    if session is None:
        return []
    slots = [session.open]
    hour = session.open.astimezone(MARKET_TIMEZONE).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    while hour.astimezone(UTC) < session.close:
        slots.append(hour.astimezone(UTC))
        hour += timedelta(hours=1)
    return slots


def lite_not_before(slot: datetime) -> datetime:
    """When the run of ``slot`` starts its work: the slot plus :data:`LITE_OFFSET_S`."""
    return _aware(slot) + timedelta(seconds=LITE_OFFSET_S)


def offset_wait_s(not_before: datetime, now: datetime) -> float:
    """Seconds a run started at ``now`` waits for its ``not_before`` time (0 once it has passed).

    A slot's run starts after the slot, so it never waits more than the offset; a ``not_before``
    further ahead is a wrong tag (a copied run, a clock jump), an error naming both times.
    """
    wait = (_aware(not_before) - _aware(now)).total_seconds()
    if wait > LITE_OFFSET_S + 1.0:
        raise ValueError(f"run not before {not_before.isoformat()}: {wait:.1f} s ahead of {now.isoformat()}, "
                         f"more than the {LITE_OFFSET_S:g} s offset of a slot")  # fmt: skip
    return max(wait, 0.0)


def market_time_between(start: datetime, end: datetime, exchange: str = EXCHANGE) -> timedelta:
    """Trading time of the exchange between two instants (overnight, weekends and holidays count 0)."""
    start, end = _aware(start), _aware(end)
    if end <= start:
        return timedelta(0)
    total = timedelta(0)
    day = start.astimezone(MARKET_TIMEZONE).date()
    last = end.astimezone(MARKET_TIMEZONE).date()
    while day <= last:
        session = session_on(day, exchange)
        if session is not None:
            overlap = min(end, session.close) - max(start, session.open)
            total += max(overlap, timedelta(0))
        day += timedelta(days=1)
    return total


@dataclass(frozen=True)
class Staleness:
    """Whether the lite run is stale at ``now``: in market hours, with more than the limit of market
    time since ``reference`` (the last successful lite run, or when watching began if later)."""

    stale: bool
    reason: str
    reference: datetime
    elapsed: timedelta
    session: Session | None


def lite_staleness(
    now: datetime, last_success: datetime | None, watching_since: datetime, limit: timedelta = LITE_MAX_AGE,
    exchange: str = EXCHANGE,
) -> Staleness:  # fmt: skip
    """Judge the time since the last successful lite run, counted in market time only.

    Outside market hours nothing is stale (the lite run does not run then). Market time, not wall
    time: Monday 10:00 after a Friday 15:00 run is 1.5 h, not 67 h.
    """
    reference = max(_aware(t) for t in (last_success, watching_since) if t is not None)
    slot = lite_slot(now, exchange)
    if not slot.due:
        return Staleness(False, f"outside market hours ({slot.reason})", reference, timedelta(0), slot.session)
    elapsed = market_time_between(reference, now, exchange)
    hours = elapsed.total_seconds() / 3600
    what = "the last successful lite run" if last_success is not None and _aware(last_success) >= reference else (
        "watching began"
    )  # fmt: skip
    if elapsed > limit:
        return Staleness(True, f"{hours:.2f} h of market time since {what} (limit {limit})", reference, elapsed,
                         slot.session)  # fmt: skip
    return Staleness(False, f"{hours:.2f} h of market time since {what}", reference, elapsed, slot.session)


def nightly_due(moment: datetime, exchange: str = EXCHANGE) -> SlotDecision:
    """Whether the nightly suite runs at ``moment``: on a session day, after that session's close."""
    moment = _aware(moment)
    local = moment.astimezone(MARKET_TIMEZONE)
    session = session_on(local.date(), exchange)
    stamp = local.strftime("%Y-%m-%d %H:%M %Z")
    if session is None:
        closed = holiday_name(local.date(), exchange) or ("weekend" if local.weekday() >= 5 else "no session")
        return SlotDecision(moment, False, f"{stamp}: {exchange} did not trade ({closed})", None)
    if moment < session.close:
        return SlotDecision(moment, False, f"{stamp}: the session is still open", session)
    return SlotDecision(moment, True, f"{stamp}: after the close of {session.day.isoformat()}", session)


def holiday_name(day: date, exchange: str = EXCHANGE) -> str | None:
    """The exchange's name for the holiday on ``day`` (``Thanksgiving``), or None."""
    calendar = _calendar(exchange, day.year)
    label = pd.Timestamp(day)
    names = calendar.regular_holidays.holidays(label, label, return_name=True)
    if len(names):
        return str(names.iloc[0])
    if label in pd.DatetimeIndex(calendar.adhoc_holidays):
        return "exchange closure"
    return None


def _calendar(exchange: str, year: int):
    """The exchange's calendar around ``year`` (:func:`stress_pipeline.market.calendars.exchange_calendar`,
    built once per process and range)."""
    return exchange_calendar(exchange, year - 1, year + 1)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"expected a timezone-aware datetime, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)
