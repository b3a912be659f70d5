"""Five-field cron expressions (minute hour day-of-month month day-of-week) matched against wall-clock times.

The pool's schedule (``pool_schedule``) only asks "does this expression fire at
this minute?" and scans minutes (a week is 10 080 of them), so there is no
next-time arithmetic to get right across month ends and daylight saving time:
what is left fits here. The libraries that do it (croniter and the like) bring
seconds fields, ``@reboot``, ``L``/``W``/``#`` and their own readings of the
corner cases, which sandkasten.yaml would then have to document or refuse.

The reading is Vixie cron's, the one ``man 5 crontab`` describes: ``*``,
lists (``1,15``), ranges (``1-5``), steps (``*/15``, ``0-30/10``, and ``5/10``
for 5 to the end in tens), names for months (``JAN``..``DEC``) and weekdays
(``SUN``..``SAT``, ``MON-FRI``; 0 and 7 are both Sunday), case-insensitive;
and when both day fields are restricted (neither starts with ``*``), a day
matching either one fires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

MONTHS = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
WEEKDAYS = {name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}


@dataclass(frozen=True)
class Field:
    """One of the five fields: its name in messages, its range and the names it accepts."""

    name: str
    low: int
    high: int
    names: dict[str, int]

    def parse(self, text: str) -> frozenset[int]:
        """The values ``text`` (``*``, lists, ranges, steps, names) stands for; ValueError saying what is wrong."""
        values: set[int] = set()
        for part in text.split(","):
            span, slash, step_text = part.partition("/")
            step = self._step(step_text, part) if slash else 1
            if span == "*":
                first, last = self.low, self.high
            else:
                first_text, dash, last_text = span.partition("-")
                first = self._value(first_text, part)
                last = self._value(last_text, part) if dash else (self.high if slash else first)
                if last < first:
                    raise ValueError("%s field %r: the range %r runs backwards" % (self.name, text, part))
            values.update(range(first, last + 1, step))
        return frozenset(values)

    def _value(self, text: str, part: str) -> int:
        number = self.names.get(text.upper()) if self.names else None
        if number is None:
            if not text.isdigit():
                known = " or a name (%s)" % ", ".join(self.names) if self.names else ""
                raise ValueError("%s field: %r is not a number%s" % (self.name, part, known))
            number = int(text)
        if not self.low <= number <= self.high:
            raise ValueError("%s field: %d is out of range %d-%d" % (self.name, number, self.low, self.high))
        return number

    def _step(self, text: str, part: str) -> int:
        if not text.isdigit() or int(text) < 1:
            raise ValueError("%s field %r: the step after / must be a whole number from 1" % (self.name, part))
        return int(text)


FIELDS = (
    Field("minute", 0, 59, {}),
    Field("hour", 0, 23, {}),
    Field("day-of-month", 1, 31, {}),
    Field("month", 1, 12, MONTHS),
    Field("day-of-week", 0, 7, WEEKDAYS),
)


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression: the minutes, hours, days, months and weekdays (0 = Sunday) it fires at."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    either_day: bool  # both day fields restricted: a day matching either fires (Vixie cron's rule)

    @classmethod
    def parse(cls, text: object) -> Cron:
        """``text`` as a five-field expression; ValueError naming the field and what is wrong with it."""
        if not isinstance(text, str):
            raise ValueError("a cron expression is a string like '50 8 * * MON', not %r" % (text,))
        parts = text.split()
        if len(parts) != len(FIELDS):
            raise ValueError(
                "a cron expression has 5 fields (minute hour day-of-month month day-of-week), not %d: %r"
                % (len(parts), text)
            )
        minutes, hours, days, months, weekdays = (field.parse(part) for field, part in zip(FIELDS, parts, strict=True))
        weekdays = frozenset(day % 7 for day in weekdays)  # 7 is Sunday too
        either_day = not parts[2].startswith("*") and not parts[4].startswith("*")
        return cls(" ".join(parts), minutes, hours, days, months, weekdays, either_day)

    def matches(self, when: datetime) -> bool:
        """Whether the expression fires in the minute of ``when`` (its wall-clock fields, as given)."""
        if when.minute not in self.minutes or when.hour not in self.hours or when.month not in self.months:
            return False
        day = when.day in self.days
        weekday = (when.weekday() + 1) % 7 in self.weekdays  # Python's Monday is 0, cron's Sunday
        return (day or weekday) if self.either_day else (day and weekday)
