"""What one cell's text means, as people write it: a missing marker, or a number.

Pure Python (no pandas): the prediction API reads a request's strings with these functions, and
training (:mod:`stepml.columns`, the CSV readers of both engines) reads an upload's cells with the
same ones, so a value means the same thing in a CSV and in a request.
"""

from __future__ import annotations

import itertools
import math
import re

#: "Not available", read as missing in any case: ``NA``, ``n/a``, ``NaN``, ``null``, ``Null``...
MISSING_WORDS = ("na", "n/a", "nan", "null")
#: Read as missing exactly as written: Adult writes '?', Excel's #N/A, an empty cell. ``None`` is one
#: although Rdatasets' Cars93 writes it as a real category (its AirBags): a known ambiguity.
MISSING_SYMBOLS = ("?", "", "#N/A", "None")
#: Every spelling read as missing (pandas' ``na_values`` matches exactly: each case of the words).
MISSING_MARKERS = [
    *MISSING_SYMBOLS,
    *sorted({"".join(letters) for word in MISSING_WORDS for letters in itertools.product(
        *((c.lower(), c.upper()) for c in word))}),
]
_SYMBOLS = frozenset(MISSING_SYMBOLS)

#: Currency symbols a formatted number may carry, before or after it (one, with an optional space).
CURRENCIES = "$€£¥"
#: A number as a spreadsheet or a finance system writes it: ``$42,000.00``, ``-€5``, ``45.2%``,
#: ``1,234``, ``12 €``. Thousands separators are commas between groups of exactly three digits
#: (``1,5`` - a decimal comma - is not a number: European formats are not guessed).
FORMATTED_NUMBER = re.compile(
    rf"(?P<sign>[+-]?)(?P<before>[{CURRENCIES}] ?)?(?P<sign2>[+-]?)"
    r"(?P<digits>\d{1,3}(?:,\d{3})+(?:\.\d*)?|\d+(?:\.\d*)?|\.\d+)"
    rf"(?P<percent> ?%)?(?P<after> ?[{CURRENCIES}])?"
)
#: A plain number as pandas' CSV reader reads one (with an exponent): no ``inf``, ``nan`` or ``1_000``.
PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def is_missing_marker(text: str) -> bool:
    """Whether ``text`` (spaces around it ignored) is one of :data:`MISSING_MARKERS`."""
    if len(text) > 4 and not (text[0].isspace() or text[-1].isspace()):
        return False  # the common case, a longer value: no marker is
    stripped = text.strip()
    return stripped in _SYMBOLS or (len(stripped) <= 4 and stripped.lower() in MISSING_WORDS)


def number_format(text: str) -> tuple[float, frozenset[str]] | None:
    """The number ``text`` holds (spaces around it ignored) and how it was formatted: a subset of
    ``{"currency", "thousands", "percent"}``, empty for a plain number; None when it is not a
    finite number. ``45.2%`` is 45.2: a percentage is kept as written."""
    stripped = text.strip()
    if PLAIN_NUMBER.fullmatch(stripped):
        value = float(stripped)
        return (value, frozenset()) if math.isfinite(value) else None
    match = FORMATTED_NUMBER.fullmatch(stripped)
    if match is None:
        return None
    currency = match["before"] or match["after"]
    if (match["sign"] and match["sign2"]) or (match["before"] and match["after"]) or (currency and match["percent"]):
        return None
    value = float(match["digits"].replace(",", ""))
    if "-" in (match["sign"], match["sign2"]):
        value = -value
    how = {"currency"} if currency else set()
    if "," in match["digits"]:
        how.add("thousands")
    if match["percent"]:
        how.add("percent")
    return value, frozenset(how)


def number(text: str) -> float | None:
    """The number ``text`` holds, plain or formatted (:func:`number_format`); None when none."""
    found = number_format(text)
    return None if found is None else found[0]
