"""Quality flags as a spreadsheet (CSV) whose cells never run as formulas."""

from __future__ import annotations

import csv
import io

from django.http import HttpResponse

COLUMNS = ["case", "round", "source", "revision_number", "organ", "kind", "reason"]


def csv_cell(value) -> str:
    """A cell a spreadsheet will not run as a formula (=, +, -, @ lead a formula)."""
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") else text


def flags_csv(rows: list[dict]) -> HttpResponse:
    """Flag rows (selectors.review.flag_row) as an attachment `quality-flags.csv`, one line a flag."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerows([csv_cell(row[c]) for c in COLUMNS] for row in rows)
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="quality-flags.csv"'
    return response
