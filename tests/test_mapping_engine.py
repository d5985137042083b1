"""The mapping engine on its own: what a mapping file may say, what loading refuses (naming
the file and the key), ``receiver mappings check``, and a few mapping rules run directly."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

from receiver.mapping import CompiledMapping, MappingError, load_dir, load_file

BASE = """
source: demo
version: 2
envelope:
  body: json
  credential: {setting: RECEIVER_DEMO_TOKEN, locations: [bearer]}
type_from: [/kind]
identities:
  - {kind: demo_user, from: [/user/id], transforms: [string]}
  - {kind: demo_visitor, from: [/visitor], known: false}
fields:
  lead.email: /user/email
  lead.custom:
    each: /user/fields
    key: /name
    value: /value
  properties.items:
    each: /items
    fields:
      product.id: {from: [/sku], transforms: [string]}
      quantity: {from: [/qty], transforms: [number]}
types:
  seen: page.viewed
"""


def write(tmp_path: Path, text: str, name: str = "demo.yaml") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / name
    path.write_text(text)
    return path


def refused(tmp_path: Path, old: str, new: str) -> str:
    assert old in BASE
    path = write(tmp_path, BASE.replace(old, new))
    with pytest.raises(MappingError) as e:
        load_file(path)
    message = str(e.value)
    assert str(path) in message, message
    return message


def test_the_base_file_loads(tmp_path: Path) -> None:
    m = load_file(write(tmp_path, BASE))
    assert m.name == "demo@2" and m.source_types == ["seen"]


def test_unknown_transform_is_refused_naming_file_and_key(tmp_path: Path) -> None:
    msg = refused(
        tmp_path, "lead.email: /user/email", "lead.email: {from: [/user/email], transforms: [shout]}"
    )
    assert "fields.lead.email" in msg and "unknown transform 'shout'" in msg


def test_transform_with_wrong_arguments_is_refused(tmp_path: Path) -> None:
    msg = refused(
        tmp_path, "lead.email: /user/email", "lead.email: {from: [/user/email], transforms: [{enum: 3}]}"
    )
    assert "fields.lead.email" in msg and "enum" in msg


@pytest.mark.parametrize("bad", ["user/email", "@nowhere/email", "@header/a/b"])
def test_bad_path_is_refused_naming_file_and_key(tmp_path: Path, bad: str) -> None:
    msg = refused(tmp_path, "lead.email: /user/email", f"lead.email: '{bad}'")
    assert "fields.lead.email" in msg


def test_bad_path_inside_each_names_the_nested_key(tmp_path: Path) -> None:
    msg = refused(tmp_path, "quantity: {from: [/qty]", "quantity: {from: [qty]")
    assert "fields.properties.items.fields.quantity" in msg


def test_unknown_canonical_type_is_refused_naming_file_and_key(tmp_path: Path) -> None:
    msg = refused(tmp_path, "seen: page.viewed", "seen: page.stared_at")
    assert "types.seen" in msg and "unknown canonical type 'page.stared_at'" in msg


def test_output_outside_the_canonical_event_is_refused(tmp_path: Path) -> None:
    msg = refused(tmp_path, "lead.email: /user/email", "traits.email: /user/email")
    assert "fields.traits.email" in msg and "output must start with" in msg


def test_unknown_key_in_the_file_is_refused(tmp_path: Path) -> None:
    msg = refused(tmp_path, "type_from: [/kind]", "type_from: [/kind]\nmapings: {}")
    assert "mapings" in msg


def test_two_files_for_one_source_are_refused(tmp_path: Path) -> None:
    write(tmp_path, BASE, "a.yaml")
    write(tmp_path, BASE, "b.yaml")
    with pytest.raises(MappingError, match="already defined"):
        load_dir(tmp_path)


# -- receiver mappings check ---------------------------------------------------------------


def check(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "receiver", "mappings", "check", str(directory)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_check_accepts_the_shipped_mappings(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "mappings", tmp_path / "m")
    r = check(tmp_path / "m")
    assert r.returncode == 0, r.stderr
    for name in ("kartra@1", "convead@1", "croct@1", "affitor@1"):
        assert name in r.stdout


def test_check_fails_on_a_broken_file_and_says_where(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "mappings", tmp_path / "m")
    write(tmp_path / "m", BASE.replace("seen: page.viewed", "seen: nope"))
    r = check(tmp_path / "m")
    assert r.returncode == 1
    assert "demo.yaml" in r.stderr and "types.seen" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("make", ["missing", "empty", "not yaml"])
def test_check_fails_on_no_usable_directory(tmp_path: Path, make: str) -> None:
    d = tmp_path / "m"
    if make == "empty":
        d.mkdir()
    elif make == "not yaml":
        write(d, "source: [unclosed\n")
    r = check(d)
    assert r.returncode == 1, r.stdout
    assert "error:" in r.stderr and "Traceback" not in r.stderr


# -- mapping rules, run directly -----------------------------------------------------------


def run(m: CompiledMapping, doc: dict[str, Any]) -> Any:
    out = m.map(doc, {}, "/", "2024-01-01T00:00:00.000Z")
    assert not out.errors, out.errors
    [event] = out.events
    return event


def test_each_keeps_absent_absent_and_empty_lists_empty(tmp_path: Path) -> None:
    m = load_file(write(tmp_path, BASE))
    assert "items" not in run(m, {"kind": "seen"}).properties
    assert run(m, {"kind": "seen", "items": []}).properties == {"items": []}
    e = run(m, {"kind": "seen", "items": [{"sku": 7, "qty": "2", "color": "red"}]})
    assert e.properties == {"items": [{"product": {"id": "7"}, "quantity": 2}]}
    assert e.extra == {"items": [{"color": "red"}]}


def test_keyed_each_leaves_out_empty_values(tmp_path: Path) -> None:
    m = load_file(write(tmp_path, BASE))
    fields = [{"name": "a", "value": "x"}, {"name": "b", "value": ""}, {"name": "c"}]
    doc = {"kind": "seen", "user": {"fields": fields}}
    assert run(m, doc).lead == {"custom": {"a": "x"}}


def test_identities_stay_in_extra_and_the_anonymous_one_is_the_anonymous_id(tmp_path: Path) -> None:
    m = load_file(write(tmp_path, BASE))
    e = run(m, {"kind": "seen", "visitor": "v-1", "user": {"id": 5, "email": " A@B.example "}})
    assert e.anonymous_id == "v-1"
    assert [(i.kind, i.value, i.known) for i in e.identities] == [
        ("demo_user", "5", True),
        ("demo_visitor", "v-1", False),
        ("email_sha256", e.lead["email_sha256"], True),
    ]
    assert e.lead["email"] == "a@b.example" and e.lead["email_masked"] == "a***@b.example"
    assert e.extra == {"visitor": "v-1", "user": {"id": 5}}


def test_a_value_that_is_not_a_number_is_an_error_at_its_pointer(tmp_path: Path) -> None:
    m = load_file(write(tmp_path, BASE))
    doc = {"kind": "seen", "items": [{"qty": "1"}, {"qty": "lots"}]}
    out = m.map(doc, {}, "/", "2024-01-01T00:00:00.000Z")
    errors = [(e.path, e.message) for e in out.errors]
    assert errors == [("/items/1/qty", "must be a number, got 'lots'")]
    assert out.events == []


def test_an_unknown_type_is_unmapped(tmp_path: Path) -> None:
    m = load_file(write(tmp_path, BASE))
    out = m.map({"kind": "waved"}, {}, "/", "2024-01-01T00:00:00.000Z")
    assert out.events == [] and out.unmapped == [{"index": 0, "source_type": "waved"}]


def test_the_generated_pruner_leaves_what_prune_leaves() -> None:
    """``extra.pruner(tree)`` is ``prune(node, tree)`` written out for one tree: the same
    result, key order included, on random trees and documents."""
    import random

    import msgspec

    from receiver.mapping.extra import GONE, prune, pruner

    rng = random.Random(13)
    keys = ["a", "b", "c", "*", "0", "d"]

    def tree(depth: int) -> Any:
        if depth == 0 or rng.random() < 0.3:
            return True
        return {k: tree(depth - 1) for k in rng.sample(keys, rng.randint(1, 4))}

    def node(depth: int) -> Any:
        r = rng.random()
        if depth == 0 or r < 0.25:
            return rng.choice([1, "x", "", None, 2.5, True])
        if r < 0.6:
            return {k: node(depth - 1) for k in rng.sample(keys, rng.randint(0, 5))}
        return [node(depth - 1) for _ in range(rng.randint(0, 3))]

    for _ in range(2000):
        t = tree(4)
        if t is True:
            t = {"a": True}
        fn = pruner(t)
        for _ in range(5):
            n = node(5)
            want, got = prune(n, t), fn(n)
            assert (want is GONE) == (got is GONE), (t, n)
            if want is not GONE:
                assert msgspec.json.encode(got) == msgspec.json.encode(want), (t, n)


def test_campaign_reads_the_utm_parameters_as_parse_qs_does() -> None:
    """The ``campaign`` transform decodes only the utm_* pairs: the same result as
    ``parse_qs`` of the whole query, names and order included."""
    import random
    from urllib.parse import parse_qs, urlsplit

    from receiver.mapping.transforms import _UTM, _campaign

    def reference(v: str) -> dict[str, str] | None:
        if "utm_" not in v:
            return None
        try:
            query = parse_qs(urlsplit(v).query)
        except ValueError:
            return None
        out = {_UTM[k]: vals[0] for k, vals in query.items() if k in _UTM and vals[0]}
        return out or None

    rng = random.Random(13)
    parts = ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "utm%5Fsource",
             "utm_+source", "x", "", "=", "&", "%", "%zz", "%C3%A9", "%ff", "+", "a b", "#", "?", "[",
             "]", "http://", ";", "utm_source=", "é", "\n", "\x00", "%2B", "utm_medium%3D"]  # fmt: skip
    for _ in range(20000):
        v = "".join(
            rng.choice(parts) + rng.choice(["", "=", "&", "=v", "=1&"]) for _ in range(rng.randint(0, 8))
        )
        if rng.random() < 0.5:
            v = "https://e.com/p?" + v
        want, got = reference(v), _campaign(v, None, None)
        assert got == want, v
        assert want is None or list(got.items()) == list(want.items()), v


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("12", 12),
        (" 007 ", 7),
        ("999999999999999", 999999999999999),
        ("9007199254740993", 9007199254740992.0),
        ("1.0", 1.0),
        ("+5", 5),
        ("1e3", 1000.0),
    ],
)
def test_number_from_text_is_the_same_on_its_short_path(text: str, number: float) -> None:
    """Short ASCII digit strings take a shortcut to ``int``; the same value and class as
    the general path (which rounds through a float from 16 digits on)."""
    from receiver.mapping.transforms import _to_number

    got = _to_number(text, None, None)  # type: ignore[arg-type]
    assert got == number and type(got) is type(number)


@pytest.mark.parametrize("text", ["", "²", "1 2", "0x10", "12abc"])
def test_text_that_is_not_a_plain_number_is_refused(text: str) -> None:
    from receiver.mapping.transforms import TransformError, _to_number

    with pytest.raises(TransformError):
        _to_number(text, None, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"])
def test_a_utc_date_time_of_an_iso_shape_reads_as_through_datetime(fmt: str) -> None:
    """A value in UTC of a shape ``fromisoformat`` reads is written from its own text: the
    same as parsing it and writing the instant, and the same refusals."""
    import random
    from datetime import UTC, datetime

    import msgspec

    from receiver.mapping.transforms import _ISO_SHAPES, DatetimeArgs, TransformError, _instant, t_datetime

    def reference(v: str) -> str:
        s = v.strip()
        try:
            dt = datetime.fromisoformat(s) if _ISO_SHAPES[fmt].fullmatch(s) else datetime.strptime(s, fmt)
        except ValueError:
            return "refused"
        return _instant(dt.replace(tzinfo=UTC))

    fn = t_datetime(msgspec.convert({"format": fmt}, DatetimeArgs))
    rng = random.Random(13)
    sep = {"%Y-%m-%d %H:%M:%S": " ", "%Y-%m-%dT%H:%M:%S": "T"}.get(fmt)
    years = ["0000", "0001", "0999", "1969", "1970", "2024", "9999", "٢٠٢٤", "%04d"]
    for _ in range(5000):
        y = rng.choice(years).replace("%04d", f"{rng.randint(0, 9999):04d}")
        v = f"{y}-{rng.choice(['00', '01', '12', '13', '1', '١٢'])}"
        v += f"-{rng.choice(['00', '01', '29', '31', '32'])}"
        if sep:
            v += f"{sep}{rng.choice(['00', '23', '24', '9'])}:{rng.choice(['00', '59', '60'])}"
            v += f":{rng.choice(['00', '59', '60'])}"
        v = rng.choice(["", " "]) + v
        try:
            got = fn(v, None, None)  # type: ignore[arg-type]
        except TransformError:
            got = "refused"
        assert got == reference(v), v


def test_generated_constraints_report_what_the_walk_reports() -> None:
    """Every constraint of the shipped mappings, checked in place by the generated code,
    against values of every kind: the same errors, in the same order, as ``_walk``."""
    from receiver.config import shipped_mappings_dir
    from receiver.mapping.constraints import compile_constraints, generate_constraints
    from receiver.mapping.paths import Ctx

    values: list[Any] = [
        None, "", "x", "abc" * 90, "12", "-3", "1e3", "1.5", "nan", "2020-01-31", "2020-13-01",
        "https://example.com/a", "not a url", 0, 1, -1, 2**40, 1.5, -0.5, True, False,
        [], [1, "a"], ["x"] * 30, {}, {"a": 1}, {"$redacted": ["hash"], "sha256": "ab"},
    ]  # fmt: skip

    def place(tokens: tuple[str, ...], value: Any) -> Any:
        if not tokens:
            return value
        inner = place(tokens[1:], value)
        return [inner] if tokens[0] == "*" else {tokens[0]: inner}

    checked = 0
    for m in load_dir(shipped_mappings_dir()).values():
        for t in m.plan.types.values():
            for c in t.constraints:
                generated = generate_constraints([c], "check")
                walked = compile_constraints([c])
                for value in values:
                    event = place(c.tokens, value)
                    want, got = Ctx(event, {}, {}, {}), Ctx(event, {}, {}, {})
                    walked(event, want)
                    generated(event, got)
                    assert got.errors == want.errors, (m.name, c.key, value)
                    checked += 1
    assert checked > 1000


def test_generated_constraints_written_per_type_report_what_the_walk_reports() -> None:
    """The generated code tests a value's type once and writes the rules the type implies
    without it (a string's lengths as one comparison, a string's enum as a set): rules
    together on one position, with and without a type, enums of mixed kinds, members,
    children under a typed object, required positions, and redacted objects anywhere give
    the same errors, in the same order, as ``_walk``."""
    from receiver.mapping.constraints import compile_constraints, generate_constraints
    from receiver.mapping.paths import Ctx
    from receiver.mapping.plan import Constrained
    from receiver.mapping.spec import Constraint

    def c(key: str, **rule: Any) -> Constrained:
        return Constrained(key, tuple(key.split("/")) if key else (), Constraint(**rule))

    sets: list[list[Constrained]] = [
        [c("a", type="string", min_length=2, max_length=4)],
        [c("a", min_length=2, max_length=4)],
        [c("a", type="string", max_length=4), c("a", type="string", min_length=2)],
        [c("a", type="string", enum=["x", "1", "abc"])],
        [c("a", type="string", enum=["x", 1, True, None])],
        [c("a", enum=["x", 1, 1.5, False, None])],
        [c("a", type="number", enum=[1, 2.5])],
        [c("a", type="integer", minimum=0, enum=[0, 3, 2**40])],
        [c("a", type="string", pattern="[a-z]+", min_length=2, format="url")],
        [c("a", type="string", format="date", max_length=10, required=True)],
        [c("a", type="number", exclusive_minimum=0.5), c("a", minimum=-1)],
        [c("a", type="array", max_items=1, items=Constraint(type="string", max_length=2))],
        [
            c(
                "a",
                type="object",
                max_properties=1,
                keys=Constraint(max_length=1),
                values=Constraint(type="number"),
            )
        ],
        [c("a", type="object"), c("a/b", type="string", required=True), c("a/0", type="number")],
        [c("a/*", type="string", max_length=2, required=True), c("a/*/b", type="boolean")],
        [c("a", type="primitive", max_length=3), c("a", max_properties=0, max_items=0)],
    ]
    values: list[Any] = [
        None, "", "x", "ab", "abc", "abcde", "1", "1.5", "-2", "abc" * 9, "2020-01-31", "2020-13-01",
        "https://example.com/a", 0, 1, 1.0, 1.5, 2.5, -1, 2**40, True, False, [], ["x"], ["x", "yyy"],
        [None, ""], [{"b": 1}], {}, {"b": ""}, {"b": "x"}, {"0": 1}, {"b": 1, "c": 2},
        {"$redacted": ["hash"]}, [{"$redacted": ["hash"]}], {"b": {"$redacted": ["hash"]}},
    ]  # fmt: skip
    checked = 0
    for constraints in sets:
        generated = generate_constraints(constraints, "check")
        walked = compile_constraints(constraints)
        for value in values:
            for event in ({"a": value}, value):
                want, got = Ctx(event, {}, {}, {}), Ctx(event, {}, {}, {})
                walked(event, want)
                generated(event, got)
                assert got.errors == want.errors, (constraints, value)
                checked += 1
    assert checked > 1000
