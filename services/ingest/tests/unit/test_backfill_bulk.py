"""Reading Bulk API 2.0 results: CSV rows as the text arrives (a quoted value may hold
line breaks and quotes, a chunk may end anywhere), rows as the records the REST API
returns, and the checkpoint that names a job and its next result set."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from revops.ingest.backfill.bulk import (
    BulkPosition,
    MalformedResults,
    csv_records,
    csv_rows,
    read_checkpoint,
    rest_value,
)
from revops.ingest.backfill.sources import bulk_query

TEXT = 'Id,Description,Amount\n001A,"two\nlines, and ""quotes""",5000.0\n001B,,\r\n001C,plain,1\n'
ROWS = [
    ["Id", "Description", "Amount"],
    ["001A", 'two\nlines, and "quotes"', "5000.0"],
    ["001B", "", ""],
    ["001C", "plain", "1"],
]


async def chunked(text: str, size: int) -> AsyncIterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


async def rows_of(text: str, size: int) -> list[list[str]]:
    return [row async for row in csv_rows(chunked(text, size))]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
async def test_rows_are_the_same_wherever_the_chunks_end(size: int) -> None:
    assert await rows_of(TEXT, size) == ROWS


async def test_a_last_row_without_a_line_end_is_read() -> None:
    assert await rows_of("Id\n001A", 3) == [["Id"], ["001A"]]


async def test_results_that_end_inside_a_quoted_value_are_refused() -> None:
    with pytest.raises(MalformedResults, match="inside a quoted value"):
        await rows_of('Id,Name\n001A,"never closed\n', 4)


async def test_rows_become_records_shaped_as_the_rest_api_returns_them() -> None:
    text = (
        "Id,OpportunityId,Opportunity.AccountId,CreatedDate,IsWon\n"
        "008A,006A,001A,2025-01-01T00:00:01.000Z,true\n"
        "008B,006B,,2025-01-01T00:00:02Z,false\n"
    )
    records = [r async for r in csv_records("OpportunityHistory", chunked(text, 5))]
    assert records == [
        {
            "attributes": {"type": "OpportunityHistory"},
            "Id": "008A",
            "OpportunityId": "006A",
            "Opportunity": {"attributes": {"type": "Opportunity"}, "AccountId": "001A"},
            "CreatedDate": "2025-01-01T00:00:01.000+0000",
            "IsWon": "true",
        },
        {
            "attributes": {"type": "OpportunityHistory"},
            "Id": "008B",
            "OpportunityId": "006B",
            "Opportunity": None,  # no parent: REST gives null
            "CreatedDate": "2025-01-01T00:00:02.000+0000",
            "IsWon": "false",
        },
    ]


async def test_a_row_with_more_values_than_columns_is_refused() -> None:
    with pytest.raises(MalformedResults, match="3 values under 2 columns"):
        [r async for r in csv_records("Account", chunked("Id,Name\n001A,x,y\n", 100))]


def test_values_empty_is_null_and_times_are_written_as_rest_writes_them() -> None:
    assert rest_value("") is None
    assert rest_value("2025-03-04T05:06:07.123Z") == "2025-03-04T05:06:07.123+0000"
    assert rest_value("2025-03-04") == "2025-03-04"  # a date stays a date
    assert rest_value("Zed") == "Zed"


def test_a_checkpoint_names_the_job_or_a_stamp() -> None:
    stamp = "2025-01-01T00:00:30.000+0000"
    assert read_checkpoint(stamp) == (stamp, None)
    assert read_checkpoint(None) == (None, None)
    position = BulkPosition("750A", locator="MTA=", after=stamp, newest=None)
    assert read_checkpoint(position.encode()) == (stamp, position)
    with pytest.raises(ValueError, match="bulk checkpoint that cannot be read"):
        read_checkpoint('bulk {"job": 1}')


def test_a_bulk_query_has_no_order_by() -> None:
    soql = "SELECT Id FROM Account WHERE SystemModstamp >= 2025-01-01T00:00:00Z"
    assert bulk_query(f"{soql} ORDER BY SystemModstamp, Id") == soql
