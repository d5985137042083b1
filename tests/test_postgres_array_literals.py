"""A batch's columns go to PostgreSQL as one text each, in its array syntax, cast there
(store/postgres.py, ``_arrays``): what the server reads back must be exactly the Python
values, whatever the text (quotes, backslashes, braces, commas, spaces, NULL spelled out,
any Unicode), numbers and booleans (bytea columns stay lists)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from conftest import PG_URL
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver.store.postgres import _LITERAL

TEXT = st.one_of(
    st.sampled_from(["", "NULL", "null", '"', "\\", '\\"', "{a,b}", " x ", ",", "é", "\u2028", 'a"b\\c']),
    # No NUL (PostgreSQL text has none) and no lone surrogates (not UTF-8: asyncpg refuses them
    # either way, a DataError).
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12),
)
COLUMNS = {
    "text": st.lists(st.one_of(st.none(), TEXT), max_size=8),
    "bigint": st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), max_size=8),
    "bool": st.lists(st.one_of(st.none(), st.booleans()), max_size=8),
}


async def _round_trip(columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
    conn = await asyncpg.connect(PG_URL)
    try:
        out = {}
        for kind, column in columns.items():
            out[kind] = list(await conn.fetchval(f"SELECT $1::text::{kind}[]", _LITERAL[kind](column)))
        return out
    finally:
        await conn.close()


@pytest.mark.postgres_only
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.fixed_dictionaries(COLUMNS))
def test_every_column_reads_back_as_it_was(backend: str, columns: dict[str, list[Any]]) -> None:
    assert asyncio.run(_round_trip(columns)) == columns


@pytest.mark.postgres_only
def test_a_value_of_the_wrong_type_is_a_type_error(backend: str) -> None:
    """As asyncpg's own encoding says it (a bad delivery: its batch is written again one
    delivery at a time, sql.write_batch)."""
    for kind, bad in (("text", ["a", 1]), ("bigint", ["1"]), ("bool", ["false"]), ("bool", [1])):
        with pytest.raises(TypeError):
            _LITERAL[kind](bad)
