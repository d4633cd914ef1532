"""Date and datetime columns as model features: one parse format per column, numeric parts per value.

A column of dates is trained on as numbers derived from each value: ``year``, ``month``, ``day``,
``dayofweek`` (Monday 0) and ``dayofyear`` for a date, and also ``hour`` and ``minute`` when the
values carry a time (a ``%Y-%m`` month column gives ``year`` and ``month`` only). ONNX cannot parse
text, so these parts are computed in front of the graph, by :func:`parts` both at training time
(:func:`column_parts`, for the scikit-learn pipeline) and at serving time (per request row): the
same function on the same string gives the same numbers.

Each column is read with ONE format, chosen at training time by :func:`detect` and recorded in the
feature schema: :data:`ISO` (``datetime.fromisoformat``: ``2021-01-05``, ``2021-01-05 13:45:00``,
``2021-01-05T13:45:00Z``, ``...+02:00``) or a ``strptime`` format from :data:`FORMATS` (``01/05/2021``,
``5 Jan 2021``...). Where month-first and day-first both read every value (no day above 12),
month-first wins, as in pandas, and the alternative is reported. A value with a UTC offset gives the
parts of its own local time (``2021-01-05T23:30:00-05:00`` is hour 23, day 5), whatever the offset.
A missing or unreadable value gives NaN parts, which the pipeline imputes like any missing number.

Pure Python + numpy: the inference function imports this module (no pandas there).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from operator import itemgetter
from typing import Any

import numpy as np

#: The format name of ISO 8601 values, read by ``datetime.fromisoformat``.
ISO = "iso8601"
#: Parts of a date-only value, and the parts a time adds.
DATE_PARTS = ("year", "month", "day", "dayofweek", "dayofyear")
TIME_PARTS = ("hour", "minute")
#: Parts of a value without a day (``%Y-%m``).
MONTH_PARTS = ("year", "month")
#: Every part, in the order :func:`_every_part` returns them.
ALL_PARTS = DATE_PARTS + TIME_PARTS

_DAYS = (
    "%m/%d/%Y", "%d/%m/%Y", "%Y/%m/%d", "%m-%d-%Y", "%d-%m-%Y", "%d.%m.%Y", "%m/%d/%y", "%d/%m/%y",
    "%d %b %Y", "%d %B %Y", "%b %d, %Y", "%B %d, %Y", "%b %d %Y", "%d-%b-%Y", "%d-%b-%y",
)
_TIMES = ("", " %H:%M", " %H:%M:%S", " %I:%M %p", " %I:%M:%S %p")
#: The ``strptime`` formats tried after :data:`ISO`, in order of preference (month-first before
#: day-first); ``%Y-%m`` reads a month column.
FORMATS = tuple(day + time for day in _DAYS for time in _TIMES) + ("%Y-%m", "%Y/%m")
#: A column is dates when one format reads at least this share of its (non-missing) values.
DATE_SHARE = 0.9
#: How many values :func:`detect` looks at.
SAMPLE = 1000

datetime.strptime("2021", "%Y")  # import _strptime now: its lazy first import is not thread-safe


@dataclass(frozen=True)
class DateFormat:
    """How a column's dates are read: ``format`` (:data:`ISO` or a strptime format), the ``parts``
    derived from each value, and other formats that read the sample as well (``alternatives``)."""

    format: str
    parts: tuple[str, ...]
    alternatives: tuple[str, ...] = ()


#: Numeric strptime directives, as :func:`_numeric_pattern` matches them.
_DIRECTIVES = {"Y": r"(?P<Y>\d\d\d\d)", "y": r"(?P<y>\d\d)", "m": r"(?P<m>\d\d?)", "d": r"(?P<d>\d\d?)",
               "H": r"(?P<H>\d\d?)", "M": r"(?P<M>\d\d?)", "S": r"(?P<S>\d\d?)"}
_PATTERNS: dict[str, re.Pattern[str] | None] = {}


def _numeric_pattern(fmt: str) -> re.Pattern[str] | None:
    """A regular expression reading ``fmt`` when it has only numeric directives (``%m/%d/%Y
    %H:%M``), else None. ``datetime.strptime`` costs ~10 us a value, in Python; this reads the same
    strings (a test compares them) in a fraction of that - a column of 300k distinct timestamps is
    parsed several times in training."""
    if fmt in _PATTERNS:
        return _PATTERNS[fmt]
    pieces: list[str] = []
    index = 0
    pattern: re.Pattern[str] | None = None
    while index < len(fmt):
        char = fmt[index]
        if char == "%":
            directive = fmt[index + 1 : index + 2]
            if directive not in _DIRECTIVES:
                break
            pieces.append(_DIRECTIVES[directive])
            index += 2
            continue
        pieces.append(r"\s+" if char.isspace() else re.escape(char))  # strptime: a space is any run
        index += 1
    else:
        pattern = re.compile("".join(pieces))
    _PATTERNS[fmt] = pattern
    return pattern


def _read_numeric(pattern: re.Pattern[str], text: str) -> datetime | None:
    found = pattern.fullmatch(text)
    if found is None:
        return None
    fields = found.groupdict()
    if "Y" in fields:
        year = int(fields["Y"])
    else:  # strptime's %y: 69-99 are the 1900s, 00-68 the 2000s
        short = int(fields["y"])
        year = short + (1900 if short >= 69 else 2000)
    try:
        return datetime(year, int(fields.get("m") or 1), int(fields.get("d") or 1), int(fields.get("H") or 0),
                        int(fields.get("M") or 0), int(fields.get("S") or 0))
    except ValueError:  # 31/02, hour 24...
        return None


def parse(value: Any, fmt: str) -> datetime | None:
    """``value`` read with ``fmt``; None when it is missing or does not match."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    if fmt != ISO:
        pattern = _numeric_pattern(fmt)
        if pattern is not None:
            return _read_numeric(pattern, text)
    try:
        return datetime.fromisoformat(text) if fmt == ISO else datetime.strptime(text, fmt)
    except ValueError:
        return None


def _every_part(moment: datetime) -> tuple[int, ...]:
    """:data:`ALL_PARTS` of a parsed value (the day of the year by ordinals: ``timetuple()`` costs
    several times more)."""
    first = _JANUARY_FIRST.get(moment.year)
    if first is None:
        first = _JANUARY_FIRST[moment.year] = date(moment.year, 1, 1).toordinal()
    return (moment.year, moment.month, moment.day, moment.weekday(), moment.toordinal() - first + 1,
            moment.hour, moment.minute)


_JANUARY_FIRST: dict[int, int] = {}
_PICKS: dict[tuple[str, ...], Callable[[tuple[int, ...]], tuple[int, ...]]] = {}


def _picker(names: Sequence[str]) -> Callable[[tuple[int, ...]], tuple[int, ...]]:
    """The function taking ``names`` out of :func:`_every_part`'s tuple (always a tuple)."""
    key = tuple(names)
    found = _PICKS.get(key)
    if found is None:
        unknown = [name for name in key if name not in ALL_PARTS]
        if unknown or not key:
            raise ValueError(f"unknown date part(s) {', '.join(unknown)}; the parts are {', '.join(ALL_PARTS)}")
        indices = [ALL_PARTS.index(name) for name in key]
        if len(indices) == 1:
            only = indices[0]
            found = _PICKS[key] = lambda every: (every[only],)
        else:
            found = _PICKS[key] = itemgetter(*indices)
    return found


def parts(value: Any, fmt: str, names: Sequence[str]) -> tuple[float, ...]:
    """The parts ``names`` of ``value`` read with ``fmt``, as floats; all NaN when it is missing or
    unreadable. The one derivation used by training and serving alike."""
    pick = _picker(names)
    parsed = parse(value, fmt)
    if parsed is None:
        return (math.nan,) * len(names)
    return tuple(float(number) for number in pick(_every_part(parsed)))


def column_parts(values: Iterable[Any], fmt: str, names: Sequence[str]) -> np.ndarray:
    """:func:`parts` of every value, as a float64 ``[rows, parts]`` array (each distinct string is
    parsed once: a daily column repeats its values). The same numbers as :func:`parts`, which a
    test checks; the whole numbers become floats once, in the array."""
    pick = _picker(names)
    missing = (math.nan,) * len(names)
    cache: dict[str, tuple[float, ...] | tuple[int, ...]] = {}
    rows: list[tuple[float, ...] | tuple[int, ...]] = []
    for value in values:
        if not isinstance(value, str):
            rows.append(missing)
            continue
        found = cache.get(value)
        if found is None:
            parsed = parse(value, fmt)
            found = cache[value] = missing if parsed is None else pick(_every_part(parsed))
        rows.append(found)
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(names))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _has_time(fmt: str, values: Sequence[str]) -> bool:
    if fmt == ISO:  # ISO 8601 times are written with colons (13:45, +02:00)
        return any(":" in value for value in values)
    return "%H" in fmt or "%I" in fmt


def detect(values: Iterable[Any], share: float = DATE_SHARE) -> DateFormat | None:
    """The format that reads at least ``share`` of the first :data:`SAMPLE` non-missing values, or
    None when none does. A plain number never counts as a date (``2021`` is a year, ``20210105`` a
    number).

    The format reading the most values wins; on a tie the earlier of :data:`ISO`, :data:`FORMATS`.
    """
    sample: list[str] = []
    for value in values:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        text = str(value).strip()
        if text:
            sample.append(text)
        if len(sample) >= SAMPLE:
            break
    if not sample:
        return None
    needed = share * len(sample)
    # A plain number is never read as a date (ISO 8601 would read 20210105): a column of numbers
    # written as text, or of years, is not a date column.
    texts = [text for text in sample if not _is_number(text)]
    # Only formats that read one of the first values can reach the share: try those on the rest.
    head = texts[:20]
    candidates = [fmt for fmt in (ISO, *FORMATS) if any(parse(text, fmt) is not None for text in head)]
    counts = {fmt: sum(parse(text, fmt) is not None for text in texts) for fmt in candidates}
    readable = [fmt for fmt in candidates if counts[fmt] >= needed]
    if not readable:
        return None
    best = max(readable, key=lambda fmt: counts[fmt])  # max keeps the first of equals
    if best in ("%Y-%m", "%Y/%m"):
        chosen: tuple[str, ...] = MONTH_PARTS
    else:
        chosen = DATE_PARTS + (TIME_PARTS if _has_time(best, sample) else ())
    others = tuple(fmt for fmt in readable if fmt != best and counts[fmt] == counts[best])
    return DateFormat(format=best, parts=chosen, alternatives=others)


def describe(fmt: str) -> str:
    """The format as a user reads it, with an example: ``%d/%m/%Y (e.g. 05/01/2021)``."""
    if fmt == ISO:
        return "ISO 8601 (e.g. 2021-01-05 or 2021-01-05T13:45:00)"
    return f"{fmt} (e.g. {datetime(2021, 1, 5, 13, 45).strftime(fmt)})"


def derived_name(column: str, part: str) -> str:
    """The model feature holding ``part`` of date column ``column`` (internal to the model)."""
    return f"{column}.{part}"


def model_features(schema: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The features the fitted pipeline and the ONNX graph take, in order: the schema's numeric and
    categorical features as they are, each date column replaced by one numeric feature per part
    (``source``: the date column, ``part``: which part)."""
    features: list[dict[str, Any]] = []
    for spec in schema:
        if spec["kind"] != "date":
            features.append(dict(spec))
            continue
        for part in spec["parts"]:
            features.append({"name": derived_name(str(spec["name"]), part), "kind": "numeric",
                             "source": spec["name"], "part": part})
    return features


def is_date(spec: Mapping[str, Any]) -> bool:
    return spec.get("kind") == "date"
