"""One value formatter for every table: the CLI's text tables and the report's HTML/Markdown
printed NaN differently ("nan" and "-"), and only the report suppressed "-0.0000"."""
from __future__ import annotations

import math

from optiqa.core.tables import format_table, format_value
from optiqa.report.document import Document, Table


def test_cells():
    assert [format_value(v) for v in (None, math.nan, math.inf, -math.inf, True, False)] == \
        ["-", "nan", "inf", "-inf", "yes", "no"]
    assert format_value(0.123456) == "0.1235" and format_value(2.0, 1) == "2.0"
    assert format_value(-0.00001) == "0.0000" and format_value(-0.0) == "0.0000"
    assert format_value(-0.00006) == "-0.0001" and format_value(3) == "3"


def test_cli_and_report_tables_print_the_same_cells():
    row = [None, math.nan, -0.00001, 0.5]
    text = format_table(["a", "b", "c", "d"], [row]).splitlines()[-1].split()
    assert text == ["-", "nan", "0.0000", "0.5000"]
    doc = Document("t")
    doc.table(Table("t", ["a", "b", "c", "d"], [row]))
    md = doc.markdown()
    assert "| - | nan | 0.0000 | 0.5000 |" in md
