# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""CSV files people open in a spreadsheet: no cell can run as a formula, and a French Excel variant.

A cell starting with = + - @, a tab or a carriage return is a formula (or the start of one) in Excel,
LibreOffice and Google Sheets: a name such as ``=cmd|' /C calc'!A0`` in the roster would run when a
planner opens the file. Such cells are written with a leading apostrophe, which spreadsheets show as
text. A plain number (``-5``, ``+33612345678``) is left as it is: it cannot call anything.

``excel=True`` writes what French Excel opens by double-click: UTF-8 with a byte order mark, ``;``
between cells and CRLF line ends.
"""
from __future__ import annotations

import csv
import re

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:[.,][0-9]+)?\Z")
BOM = "\ufeff"


def safe_cell(value):
    """The cell as a spreadsheet must show it: text that could start a formula gets a leading '."""
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_PREFIXES) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


class SafeWriter:
    """csv.writer whose rows are neutralised cell by cell."""

    def __init__(self, stream, excel=False):
        self._writer = csv.writer(stream, delimiter=";" if excel else ",",
                                  lineterminator="\r\n" if excel else "\n")

    def writerow(self, row):
        self._writer.writerow([safe_cell(cell) for cell in row])

    def writerows(self, rows):
        for row in rows:
            self.writerow(row)
