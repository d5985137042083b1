"""One plan, every execution path: the generated code and the reference interpreter must
agree on every shipped fixture (and on hostile variants of each), mapping a redacted body
must give what mapping the clear one gives, and a few semantics the issue tracker once
found split between paths are pinned here."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import msgspec
import pytest
from conftest import ROOT

from receiver.ingest.envelope import decode_inner, decode_outer
from receiver.mapping import CompiledMapping, MappingError, load_dir, load_file
from receiver.mapping.interpret import interpreter
from receiver.problems import Problem

FIXTURES = sorted((ROOT / "tests" / "fixtures").glob("*/*.yaml"))
MAPPINGS = load_dir(ROOT / "mappings")
REFERENCE = {name: CompiledMapping(m.plan, interpreter) for name, m in MAPPINGS.items()}
RECEIVED = "2025-11-25T00:00:00.000Z"
HOSTILE: list[Any] = ["", "lots", {"a": "b"}, [1, "x"], -1.5, "http://[x?utm_source=a", 10**30, True]


def delivery(fixture: Path) -> tuple[str, Any, dict[str, str], str]:
    """A fixture's request as the mapping sees it: (source, document, headers, route)."""
    source = fixture.parent.name
    req = msgspec.yaml.decode(fixture.read_bytes())["request"]
    m = MAPPINGS[source]
    headers = {k.lower(): v for k, v in req.get("headers", {}).items()}
    query = urlencode(req.get("query", {}))
    if "json" in req:
        body, ctype = msgspec.json.encode(req["json"]), "application/json"
    else:
        body, ctype = (req.get("form") or req.get("raw") or "").encode(), headers.get("content-type", "")
    doc = decode_outer(m.envelope, body, ctype, query)
    decode_inner(m.envelope, doc)
    return source, doc, headers, req.get("path", "/") or "/"


def outcome(m: CompiledMapping, doc: Any, headers: dict[str, str], route: str) -> Any:
    """What a mapping makes of a (copy of a) document, redaction included."""
    doc = copy.deepcopy(doc)
    m.redact(doc)
    out = m.map(doc, headers, route, RECEIVED)
    return doc, out.events, out.errors, out.unmapped


def leaves(node: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from leaves(v, (*at, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from leaves(v, (*at, i))
    else:
        yield at


def replaced(doc: Any, at: tuple[Any, ...], value: Any) -> Any:
    doc = copy.deepcopy(doc)
    node = doc
    for k in at[:-1]:
        node = node[k]
    node[at[-1]] = value
    return doc


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f"{p.parent.name}/{p.stem}" for p in FIXTURES])
def test_generated_code_and_interpreter_agree(fixture: Path) -> None:
    try:
        source, doc, headers, route = delivery(fixture)
    except Problem:
        pytest.skip("the fixture is a body the envelope refuses (400)")
    generated, reference = MAPPINGS[source], REFERENCE[source]
    variants = [doc] + [replaced(doc, at, v) for at in list(leaves(doc))[:25] if at for v in HOSTILE]
    for variant in variants:
        assert outcome(generated, variant, headers, route) == outcome(reference, variant, headers, route)


def test_the_variants_reach_errors_and_events() -> None:
    """The agreement above is worth something only if the variants exercise both."""
    errors = events = 0
    for fixture in FIXTURES[:20]:
        try:
            source, doc, headers, route = delivery(fixture)
        except Problem:
            continue
        for at in list(leaves(doc))[:25]:
            for v in HOSTILE:
                if at:
                    _, evs, errs, _ = outcome(MAPPINGS[source], replaced(doc, at, v), headers, route)
                    errors += bool(errs)
                    events += bool(evs)
    assert errors > 50 and events > 500, (errors, events)


@pytest.mark.parametrize("source", sorted(MAPPINGS))
def test_mapping_the_redacted_body_gives_the_same_events(source: str) -> None:
    """What is stored is the redacted body; a replay maps it. It must not differ."""
    for fixture in [f for f in FIXTURES if f.parent.name == source]:
        _, doc, headers, route = delivery(fixture)
        m = MAPPINGS[source]
        clear_doc = copy.deepcopy(doc)
        for item in clear_doc if isinstance(clear_doc, list) else [clear_doc]:
            for holder in [item, *(item.get(f) for f in m.envelope.json_fields)]:
                for name in m.credential.field:  # credentials go, privacy or not
                    if isinstance(holder, dict):
                        holder.pop(name, None)
        clear = m.map(clear_doc, headers, route, RECEIVED)
        _, events, errors, unmapped = outcome(m, doc, headers, route)
        assert (events, errors, unmapped) == (clear.events, clear.errors, clear.unmapped), fixture.name


# -- pinned semantics --------------------------------------------------------------------------

DEMO = """
source: demo
version: 1
envelope:
  body: json
  credential: {setting: RECEIVER_DEMO_TOKEN, locations: [bearer]}
type_from: [/kind]
fields:
  properties.total: {from: [/a, /b], transforms: [number], default: 0}
types:
  seen: page.viewed
"""


def load(tmp_path: Path, text: str) -> CompiledMapping:
    path = tmp_path / "demo.yaml"
    path.write_text(text)
    return load_file(path)


def both(m: CompiledMapping, doc: dict[str, Any]) -> Any:
    generated = m.map(copy.deepcopy(doc), {}, "/", RECEIVED)
    reference = CompiledMapping(m.plan, interpreter).map(copy.deepcopy(doc), {}, "/", RECEIVED)
    assert (generated.events, generated.errors) == (reference.events, reference.errors)
    return generated


def test_a_value_that_fails_its_transforms_is_one_error_and_no_default(tmp_path: Path) -> None:
    m = load(tmp_path, DEMO)
    out = both(m, {"kind": "seen", "a": "x", "b": "y"})
    assert [(e.path, e.message) for e in out.errors] == [("/a", "must be a number, got 'x'")]
    assert both(m, {"kind": "seen", "b": "7"}).events[0].properties == {"total": 7}
    assert both(m, {"kind": "seen"}).events[0].properties == {"total": 0}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1.5", "must be an integer"),
        (1.5, "must be an integer"),
        ("x", "must be a number"),
        (True, "must be a number"),
    ],
)
def test_type_integer_has_one_meaning(tmp_path: Path, value: Any, message: str) -> None:
    m = load(
        tmp_path,
        DEMO.replace(
            "  seen: page.viewed",
            "  seen:\n    type: page.viewed\n    constraints:\n      /n: {type: integer}",
        ),
    )
    out = both(m, {"kind": "seen", "n": value})
    assert [(e.path, e.message) for e in out.errors] == [("/n", message)]
    for fine in ("2", 2, 2.0, "-3", "1" * 400):
        assert not both(m, {"kind": "seen", "n": fine}).errors, fine


def test_root_aliases_expand_in_constraint_keys_and_a_path_is_constrained_once(tmp_path: Path) -> None:
    text = DEMO.replace("type_from: [/kind]", "type_from: [/kind]\nroots: {person: [/lead, /profile]}")
    m = load(tmp_path, text + 'constraints:\n  "@person/email": {type: string, max_length: 5}\n')
    out = both(m, {"kind": "seen", "lead": {"email": "long@x"}, "profile": {"email": "longer@x"}})
    assert [e.path for e in out.errors] == ["/lead/email", "/profile/email"]
    with pytest.raises(MappingError, match=r"constraints\./lead/email: /lead/email is constrained twice"):
        load(
            tmp_path,
            text + 'constraints:\n  "@person/email": {type: string}\n  /lead/email: {type: string}\n',
        )


def test_croct_states_each_person_constraint_once() -> None:
    text = (ROOT / "mappings" / "croct.yaml").read_text()
    assert "/profile/firstName" not in text and "/lead/firstName" not in text
    keys = {c.key for c in MAPPINGS["croct"].plan.types["userSignedUp"].constraints}
    assert {"/lead/firstName", "/profile/firstName", "/lead/address/city", "/profile/address/city"} <= keys


# -- typed transform arguments -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transform", "reason"),
    [
        (
            '{datetime: {fromat: "%Y"}}',
            "transform 'datetime': unknown argument 'fromat' (its arguments are format, tz)",
        ),
        ("{enum: {map: {a: 1}, passtrough: true}}", "transform 'enum': unknown argument 'passtrough'"),
        ("{enum: {passthrough: true}}", "transform 'enum': Object missing required field `map`"),
        ("{datetime: {format: 3}}", "transform 'datetime': Expected `str | null`, got `int` - at `$.format`"),
        ("{datetime: {tz: Mars/Olympus}}", "unknown time zone 'Mars/Olympus'"),
        ("{phone: {country: 3}}", "must be a path or a list of paths - at `$.country`"),
        ("{phone: {country: [country]}}", "a path starts with '/' or '@', got 'country' - at `$.country`"),
        ("{pluck: {key: 1}}", "Expected `str`, got `int` - at `$.key`"),
        ("{trim: {x: 1}}", "transform 'trim': unknown argument 'x' (it takes no arguments)"),
        ("{lower: 3}", "transform 'lower' takes no arguments"),
    ],
)
def test_transform_arguments_are_checked_at_load(tmp_path: Path, transform: str, reason: str) -> None:
    text = DEMO.replace("transforms: [number], default: 0", f"transforms: [{transform}]")
    with pytest.raises(MappingError) as e:
        load(tmp_path, text)
    assert e.value.where == f"{tmp_path / 'demo.yaml'}: fields.properties.total"
    assert reason in e.value.reason


def test_path_arguments_expand_root_aliases(tmp_path: Path) -> None:
    text = DEMO.replace("type_from: [/kind]", "type_from: [/kind]\nroots: {person: [/lead, /profile]}")
    text = text.replace(
        "properties.total: {from: [/a, /b], transforms: [number], default: 0}",
        'lead.phone: {from: ["@person/phone"], transforms: [{phone: {country: ["@person/country"]}}]}',
    )
    m = load(tmp_path, text)
    out = both(m, {"kind": "seen", "profile": {"phone": "612 34 56 78", "country": "ES"}})
    assert out.events[0].lead == {"phone": "+34612345678"}


def test_a_bad_credential_location_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match=r"credential location is query:NAME.*got 'cookie:x'"):
        load(tmp_path, DEMO.replace("locations: [bearer]", "locations: [cookie:x]"))
    m = load(
        tmp_path,
        DEMO.replace("locations: [bearer]", "locations: [query:sig, header:X-Sig, field:sig, bearer]"),
    )
    assert (m.credential.query, m.credential.header, m.credential.field, m.credential.bearer) == (
        ("sig",),
        ("x-sig",),
        ("sig",),
        True,
    )


# -- the transform reference -------------------------------------------------------------------


def test_the_committed_transform_reference_is_the_generated_one() -> None:
    from receiver.mapping.docs import with_reference

    readme = (ROOT / "mappings" / "README.md").read_text(encoding="utf-8")
    assert with_reference(readme) == readme, "run: receiver mappings docs --update mappings/README.md"


def test_every_transform_is_documented() -> None:
    from receiver.mapping.transforms import REGISTRY

    readme = (ROOT / "mappings" / "README.md").read_text(encoding="utf-8")
    for name in REGISTRY:
        assert f"| `{name}` |" in readme, name


@pytest.mark.parametrize(
    ("transform", "reason"),
    [
        ('{datetime: {fromat: "%Y-%m-%d"}}', "transform 'datetime': unknown argument 'fromat'"),
        ("{enum: {map: {a: 1}, passtrough: true}}", "transform 'enum': unknown argument 'passtrough'"),
    ],
)
def test_mappings_check_names_a_misspelled_argument(tmp_path: Path, transform: str, reason: str) -> None:
    (tmp_path / "demo.yaml").write_text(
        DEMO.replace("transforms: [number], default: 0", f"transforms: [{transform}]")
    )
    r = subprocess.run(
        [sys.executable, "-m", "receiver", "mappings", "check", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert r.returncode == 1
    assert f"error: {tmp_path / 'demo.yaml'}: fields.properties.total: {reason}" in r.stderr, r.stderr


SIGNED = """
source: signed
version: 1
envelope:
  body: json
  credential: {setting: RECEIVER_SIGNED_KEY, locations: [query:sig, header:X-Sig]}
type_from: [/kind]
types:
  seen: page.viewed
"""


def test_a_declared_credential_location_is_known_to_every_user(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Decoded once into the mapping's credential: ingest checks it and keeps it out of the
    stored query, the access log masks it, the banner shows where to put it."""
    from conftest import DB, make_env
    from starlette.testclient import TestClient

    from receiver import Settings, create_app
    from receiver.cli import banner

    mappings = tmp_path / "mappings"
    mappings.mkdir()
    (mappings / "signed.yaml").write_text(SIGNED)
    secret = "s3cr3t-sig"
    env = make_env(tmp_path / "data", RECEIVER_MAPPINGS_DIR=str(mappings), RECEIVER_SIGNED_KEY=secret)
    settings = Settings.from_env(env)
    app = create_app(settings)
    caplog.set_level("INFO", logger="receiver.access")
    with TestClient(app) as client:
        assert (
            client.post("/hooks/signed", params={"sig": secret, "x": "1"}, json={"kind": "seen"}).status_code
            == 202
        )
        assert (
            client.post("/hooks/signed", headers={"X-Sig": secret}, json={"kind": "seen"}).status_code == 202
        )
        assert client.post("/hooks/signed", params={"sig": "wrong"}, json={"kind": "seen"}).status_code == 401
    # The access log shows the names of query parameters, never their values.
    assert "POST /hooks/signed 202 " in caplog.text and "query=[sig,x]" in caplog.text
    assert secret not in caplog.text
    assert settings.sqlite_path is not None
    assert [d["query"] for d in DB(settings.sqlite_path).deliveries()] == ['{"x":"1"}', "{}"]
    service = app.state.service
    assert "/hooks/signed?sig=<RECEIVER_SIGNED_KEY>" in banner(
        service.mappings, service.credentials, "http://h"
    )


def test_the_annotated_example_of_the_mappings_readme_loads() -> None:
    import re

    from receiver.mapping import load_text

    readme = (ROOT / "mappings" / "README.md").read_text(encoding="utf-8")
    found = re.search(r"## An annotated example\n\n```yaml\n(.*?)```", readme, re.S)
    assert found is not None
    m = load_text(found.group(1), "mappings/README.md")
    assert m.name == "pingly@3" and m.private == [("fields.lead.secret_code", ("hash", "mask"))]
