"""A range of whole UTC days a caller asks for (``from``..``to``, both included): an export, a report.

One rule for every door that takes one (the payments CSV export, ``analytics``): ``from`` is not
after ``to``, and ``to`` is before 9999-12-31, so that the instant ending the range (the day after
``to``, 00:00 UTC) exists. Checked where the input enters, before anything is read or streamed.
"""

from __future__ import annotations

from datetime import date

from billing_graphql.domain.errors import validation


def check_day_range(first: date, last: date, *, first_name: str = "from", last_name: str = "to") -> None:
    """Raise ``VALIDATION`` (naming the field) unless ``first``..``last`` is a range this gateway reads."""
    if last >= date.max:
        raise validation(f"'{last_name}' must be before {date.max.isoformat()}.", last_name)
    if first > last:
        raise validation(f"'{first_name}' ({first.isoformat()}) is after '{last_name}' ({last.isoformat()}).",
                         first_name)
