"""Charts drawn as SVG on the server: the right shapes for the data, escaped labels."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET

import pytest

from revops.console.charts import bar_chart, line_chart, nice_ticks

SVG = "{http://www.w3.org/2000/svg}"


def parsed(markup: str) -> ET.Element:
    # Inline SVG in HTML has no namespace declaration: add it to parse it as XML.
    return ET.fromstring(
        str(markup).replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)
    )


@pytest.mark.parametrize(
    ("top", "ticks"),
    [
        (930, [0, 250, 500, 750, 1000]),
        (1000, [0, 250, 500, 750, 1000]),
        (1001, [0, 500, 1000, 1500]),
        (4, [0, 1, 2, 3, 4]),
        (0.3, [0, 0.1, 0.2, 0.3]),
        (200_000, [0, 50_000, 100_000, 150_000, 200_000]),
        (0, [0, 1]),
        (float("nan"), [0, 1]),
    ],
)
def test_nice_ticks_cover_the_top_in_round_steps(top, ticks):
    assert nice_ticks(top) == ticks


def test_bars_are_proportional_to_their_values_and_carry_them():
    svg = parsed(bar_chart([("Inbound", 300), ("Outbound", 150), ("Partner", 0)], title="t"))
    bars = svg.findall(f"{SVG}rect[@class='bar']")
    assert [b.get("data-value") for b in bars] == ["300", "150", "0"]
    widths = [float(b.get("width") or 0) for b in bars]
    assert widths[0] == pytest.approx(2 * widths[1])
    assert widths[2] == 0
    title = svg.find(f"{SVG}title")
    assert title is not None and title.text == "t"


def test_labels_from_crm_data_are_escaped_and_long_ones_shortened():
    markup = str(bar_chart([("<script>alert(1)</script>" + "x" * 40, 5)], title="a & b"))
    assert "<script>" not in markup
    assert "&lt;script&gt;" in markup
    parsed(markup)  # well-formed
    label = re.search(r'class="axis">([^<]*)<title>', markup)
    assert label and len(label.group(1).replace("&lt;", "<").replace("&gt;", ">")) == 24


@pytest.mark.parametrize("bars", [[], [("a", 0), ("b", 0)]])
def test_no_data_is_said_not_drawn(bars):
    markup = str(bar_chart(bars, title="Empty"))
    assert "No data for this period" in markup and "data-value" not in markup


def test_lines_have_a_point_per_label_per_series_on_a_shared_scale():
    svg = parsed(
        line_chart(
            ["1 Dec", "8 Dec", "15 Dec"],
            {"Commit": [100, 200, 400], "Best case": [50, 50, 0]},
            title="trend",
        )
    )
    lines = svg.findall(f"{SVG}polyline")
    assert [p.get("data-series") for p in lines] == ["Commit", "Best case"]
    points = svg.findall(f"{SVG}circle")
    assert len(points) == 6
    commit = [p for p in points if p.get("data-series") == "Commit"]
    ys = [float(p.get("cy") or 0) for p in commit]
    assert ys[0] > ys[1] > ys[2]  # higher values are drawn higher up
    zero = next(p for p in points if p.get("data-value") == "0")
    grid = [float(g.get("y1") or 0) for g in svg.findall(f"{SVG}line")]
    assert float(zero.get("cy") or 0) == pytest.approx(max(grid))  # 0 sits on the axis
    labels = [t.text for t in svg.findall(f"{SVG}text")]
    assert "1 Dec" in labels and "15 Dec" in labels


def test_one_snapshot_is_drawn_as_a_point_and_none_as_no_data():
    svg = parsed(line_chart(["1 Dec"], {"Pipeline": [10]}, title="t"))
    assert len(svg.findall(f"{SVG}circle")) == 1
    assert "No data" in str(line_chart([], {}, title="t"))


def test_a_year_of_weeks_gets_few_uncrowded_labels_the_ends_inside_the_chart():
    weeks = [f"w{i}" for i in range(52)]
    markup = str(line_chart(weeks, {"Commit": list(range(52))}, title="t"))
    shown = re.findall(r'text-anchor="(\w+)" class="axis">(w\d+)<', markup)
    names = [name for _, name in shown]
    assert names[0] == "w0" and names[-1] == "w51" and len(names) <= 9
    positions = [int(n[1:]) for n in names]
    assert min(b - a for a, b in itertools.pairwise(positions)) >= 7
    assert shown[0][0] == "start" and shown[-1][0] == "end"
