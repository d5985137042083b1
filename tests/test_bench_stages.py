"""bench/server_instructions.py --stages: the callgrind file's arithmetic (a stage's
exclusive count, the unmarked rest, the self cost by library) sums to the total."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from server_instructions import parse_callgrind, stage_rows

# main (100 self) calls stage 0 at the top (600 inclusive); stage 0's marker calls
# stage 1 inside it (200 inclusive); the marker's own instructions are in _stagemark.
OUT = """\
version: 1
creator: callgrind-3.22.0
positions: line
events: Ir
summary: 1000
ob=(1) /usr/lib/libpython3.11.so.1.0
fl=(1) ???
fn=(1) main
0 100
cob=(2) /tmp/x/_stagemark.cpython-311-x86_64-linux-gnu.so
cfn=(2) stg_0_in_2
calls=3 0
0 600
+2 40
ob=(2)
fn=(2)
0 10
cob=(2)
cfn=(3) stg_1_in_0
calls=5 0
* 200
fn=(3)
0 7
"""


def test_stage_rows_sum_to_the_thread_total(tmp_path: Path) -> None:
    f = tmp_path / "callgrind.out-01"
    f.write_text(OUT)
    total, into, by_object = parse_callgrind(f)
    assert total == 1000
    assert into == {"stg_0_in_2": 600, "stg_1_in_0": 200}
    assert by_object == {
        "/usr/lib/libpython3.11.so.1.0": 140,
        "/tmp/x/_stagemark.cpython-311-x86_64-linux-gnu.so": 17,
    }
    rows = stage_rows(f, {0: "mapping", 1: "id generation"}, slots=2)
    assert rows["mapping"] == 400 and rows["id generation"] == 200 and rows["unmarked"] == 400
    assert rows["mapping"] + rows["id generation"] + rows["unmarked"] == rows["total"]
    assert rows["lib: CPython interpreter"] == 140 and rows["lib: stage markers"] == 17
