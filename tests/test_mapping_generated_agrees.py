"""The generated code against the reference interpreter on many inputs (hypothesis): every
shipped mapping, its fixtures with values replaced by arbitrary JSON, and a mapping whose
every field is one transform of one member (the form the generated code writes in one
piece: a value the transform returns as is put at once, a failure reported, an absent
result left out). Events (``extra`` included), errors, unmapped items and the redacted
document must be the same both ways (the key order of what is built aside: the interpreter
attaches nested objects in another order, as it always did)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import msgspec
import pytest
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver.ingest.envelope import decode_inner, decode_outer
from receiver.mapping import CompiledMapping, load_dir, load_file
from receiver.mapping.interpret import interpreter
from receiver.problems import Problem

MAPPINGS = load_dir(ROOT / "mappings")
REFERENCE = {name: CompiledMapping(m.plan, interpreter) for name, m in MAPPINGS.items()}
RECEIVED = "2025-11-25T00:00:00.000Z"


def _delivery(fixture: Path) -> tuple[str, Any, dict[str, str], str] | None:
    source = fixture.parent.name
    req = msgspec.yaml.decode(fixture.read_bytes())["request"]
    m = MAPPINGS[source]
    headers = {k.lower(): v for k, v in req.get("headers", {}).items()}
    if "json" in req:
        body, ctype = msgspec.json.encode(req["json"]), "application/json"
    else:
        body, ctype = (req.get("form") or req.get("raw") or "").encode(), headers.get("content-type", "")
    try:
        doc = decode_outer(m.envelope, body, ctype, urlencode(req.get("query", {})))
        decode_inner(m.envelope, doc)
    except Problem:
        return None
    return source, doc, headers, req.get("path", "/") or "/"


DELIVERIES = [
    d for d in (_delivery(f) for f in sorted((ROOT / "tests" / "fixtures").glob("*/*.yaml"))) if d is not None
]


def _outcome(m: CompiledMapping, doc: Any, headers: dict[str, str], route: str) -> Any:
    doc = copy.deepcopy(doc)
    m.redact(doc)
    out = m.map(doc, headers, route, RECEIVED)
    # The events as values: the interpreter attaches an object's members in another order
    # than the generated code (which keeps its own order; rows are compared old vs new).
    return msgspec.json.encode(doc), out.events, [(e.path, e.message) for e in out.errors], out.unmapped


def _paths(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every member and element of a document, containers included."""
    out = [at]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*at, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*at, i))
    return out


TEXTS = st.sampled_from(
    ["", " ", "x", "12", " 7 ", "1.5", "-0", "1e999", "2025-11-20", "2025-11-20 14:05:09", "+34 612 345 678",
     "http://a.example/?utm_source=s&utm_medium=m", "A@B.example ", "true", "0", "1700000000000"]
)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False)
    | TEXTS
    | st.text(max_size=8)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4) | TEXTS, inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_code_agrees_with_the_interpreter_on_changed_fixtures(data: st.DataObject) -> None:
    source, doc, headers, route = data.draw(st.sampled_from(DELIVERIES))
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.sampled_from(_paths(doc)))
        if not at:
            continue
        holder = doc
        for k in at[:-1]:
            holder = holder[k]
        if data.draw(st.booleans()) and isinstance(holder, dict):
            del holder[at[-1]]
        else:
            holder[at[-1]] = data.draw(JSON)
    generated = _outcome(MAPPINGS[source], doc, headers, route)
    assert generated == _outcome(REFERENCE[source], doc, headers, route)


#: Every field one transform of one member (some under an object that may be absent).
ONE_STEP = """
source: onestep
version: 1
envelope:
  body: json
  credential: {setting: RECEIVER_ONESTEP_TOKEN, locations: [bearer]}
type_from: [/kind]
fields:
  properties.n: {from: [/n], transforms: [number]}
  properties.s: {from: [/s], transforms: [string]}
  properties.i: {from: [/i], transforms: [integer]}
  properties.b: {from: [/b], transforms: [boolean]}
  properties.d: {from: [/d], transforms: [date]}
  properties.t: {from: [/t], transforms: [datetime]}
  properties.e: {from: [/e], transforms: [epoch_ms]}
  properties.c: {from: [/c], transforms: [campaign]}
  lead.phone: {from: [/o/phone], transforms: [phone]}
  lead.email: {from: [/o/email], transforms: [lower]}
  lead.score: {from: [/o/score], transforms: [number]}
  lead.first_name: {from: [/o/name], transforms: [trim]}
types:
  seen: page.viewed
"""

FIELDS = ["n", "s", "i", "b", "d", "t", "e", "c"]


@pytest.fixture(scope="module")
def one_step(tmp_path_factory: pytest.TempPathFactory) -> tuple[CompiledMapping, CompiledMapping]:
    path = tmp_path_factory.mktemp("onestep") / "onestep.yaml"
    path.write_text(ONE_STEP)
    m = load_file(path)
    return m, CompiledMapping(m.plan, interpreter)


def test_the_one_step_fields_take_the_one_piece_form(
    one_step: tuple[CompiledMapping, CompiledMapping],
) -> None:
    """The test below exercises the form it is about: every field here is written in it."""
    src = one_step[0]._types["seen"].build.__source__  # type: ignore[attr-defined]
    assert src.count("except TransformError") == 10 and "FAILED" not in src, src


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=len(FIELDS)),
    person=st.none() | JSON | st.dictionaries(st.sampled_from(["phone", "email", "score", "name"]), JSON),
)
def test_one_step_fields_agree_with_the_interpreter(
    one_step: tuple[CompiledMapping, CompiledMapping], values: dict[str, Any], person: Any
) -> None:
    doc: dict[str, Any] = {"kind": "seen", **values}
    if person is not None:
        doc["o"] = person
    generated, reference = one_step
    assert _outcome(generated, doc, {}, "/") == _outcome(reference, doc, {}, "/")


KEYS = st.sampled_from(["a", "b", "c", "*", "0", "d"])
TREES = st.recursive(
    st.just(True), lambda inner: st.dictionaries(KEYS, inner, min_size=1, max_size=4), max_leaves=10
).filter(lambda t: t is not True)
NODES = st.recursive(
    st.sampled_from([1, "x", "", None, 2.5, True]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=1000, deadline=None)
@given(tree=TREES, nodes=st.lists(NODES, min_size=1, max_size=4))
def test_the_generated_pruner_agrees_with_prune(tree: Any, nodes: list[Any]) -> None:
    """``extra.pruner(tree)`` (loops, no comprehension made per object) is
    ``prune(node, tree)``: the same result, key order and ``None`` placeholders included."""
    from receiver.mapping.extra import GONE, prune, pruner

    fn = pruner(tree)
    for node in nodes:
        want, got = prune(node, tree), fn(node)
        assert (want is GONE) == (got is GONE)
        if want is not GONE:
            assert msgspec.json.encode(got) == msgspec.json.encode(want)
