"""Event ids: UUIDv7, unique, and sortable by arrival even within one millisecond."""

from __future__ import annotations

import uuid

from receiver.ids import id_time_ms, new_id


def test_ids_are_uuid7_and_strictly_increasing_within_a_millisecond() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    per_ms: dict[int, int] = {}
    for i in ids:
        u = uuid.UUID(i)
        assert u.version == 7 and u.variant == uuid.RFC_4122
        per_ms[id_time_ms(i)] = per_ms.get(id_time_ms(i), 0) + 1
    assert max(per_ms.values()) > 1  # several in one millisecond, still ordered


def test_event_ids_of_the_id_just_made_match_those_of_any_copy_of_it() -> None:
    from receiver.ids import event_id

    for _ in range(1000):
        made = new_id()
        copy = "".join(list(made))  # another string object: read by parsing the text
        assert copy is not made
        for position in (0, 1, 7, (1 << 30) - 1):
            assert event_id(made, position) == event_id(copy, position)
            assert uuid.UUID(event_id(made, position)).version == 7
