"""The vendor's documented constraints (lengths, patterns, ranges, enums, required ids).

Every keyword of a constraint is one entry of a table (``TYPES`` for ``type``, ``RULES``
for the others): the condition that breaks it and its message. A constraint is compiled
once, from the tables, into one function ``value -> messages``; an event type's
constraints become one walk over the parts of the event that exist, reporting every
offending JSON Pointer. There is one evaluation path: what passes is what no rule
objects to.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import date
from typing import Any
from urllib.parse import urlsplit

import msgspec

from .paths import Ctx, pointer
from .plan import Constrained
from .privacy import REDACTED_KEY
from .spec import Constraint
from .transforms import NUMBER

_INTEGER = re.compile(r"[+-]?\d+")


def is_number(v: Any) -> bool:
    """A JSON number, or text that is one (numbers sent as text count as numbers)."""
    cls = v.__class__
    if cls is int or cls is float:
        return True
    return cls is str and NUMBER.fullmatch(v.strip()) is not None


def is_integer(v: Any) -> bool:
    """For a value that ``is_number``: a whole number."""
    cls = v.__class__
    if cls is int:
        return True
    if cls is float:
        return v.is_integer()  # type: ignore[no-any-return]
    s = v.strip()
    return _INTEGER.fullmatch(s) is not None or float(s).is_integer()


def is_url(v: str) -> bool:
    try:
        parts = urlsplit(v)
    except ValueError:  # "http://[x": an invalid IPv6 host
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and " " not in v


def is_date(v: str) -> bool:
    try:
        date.fromisoformat(v)
    except ValueError:
        return False
    return True


_NUM = "(cls is int or cls is float or (cls is str and is_number(v)))"

TYPES: dict[str, list[tuple[str, str]]] = {
    "string": [("cls is str", "must be a string")],
    "number": [(_NUM, "must be a number")],
    "integer": [(_NUM, "must be a number"), ("is_integer(v)", "must be an integer")],
    "boolean": [("cls is bool", "must be a boolean")],
    "object": [("cls is dict", "must be an object")],
    "array": [("cls is list", "must be an array")],
    "primitive": [("cls is not dict and cls is not list", "must be a string, number, boolean or null")],
}
"""``type``: conditions a value of the type meets, each with the one message a value that
fails it gets (no other rule is reported for it)."""


def _lower_bound(op: str, word: str) -> Callable[[float], tuple[str, str, str]]:
    def rule(lo: float) -> tuple[str, str, str]:
        test = f"(float(v) if cls is str else v) {op} {lo!r}"
        return _NUM, test, f"must be {word}" if lo == 0 else f"must be {'>=' if op == '<' else '>'} {lo:g}"

    return rule


RULES: dict[str, Callable[[Any], tuple[str, str, str]]] = {
    "min_length": lambda n: ("cls is str", f"len(v) < {n!r}", f"must be at least {n} characters long"),
    "max_length": lambda n: ("cls is str", f"len(v) > {n!r}", f"must be at most {n} characters long"),
    "pattern": lambda rx: ("cls is str", "PATTERN(v) is None", f"must match {rx}"),
    "format": lambda name: {
        "url": ("cls is str", "not is_url(v)", "must be a well-formed URL"),
        "date": ("cls is str", "not is_date(v)", "must be a date like YYYY-MM-DD"),
    }[name],
    "minimum": _lower_bound("<", "non-negative"),
    "exclusive_minimum": _lower_bound("<=", "positive"),
    "enum": lambda allowed: ("", f"v not in {allowed!r}", "must be one of " + ", ".join(map(str, allowed))),
    "max_items": lambda n: ("cls is list", f"len(v) > {n!r}", f"must have at most {n} items"),
    "max_properties": lambda n: ("cls is dict", f"len(v) > {n!r}", f"must have at most {n} properties"),
}
"""Every value keyword: a factory from the keyword's value to (the condition on ``v`` the
rule applies to, "" for every value; the condition under it that breaks the rule; the
message), in the order messages are reported. ``required`` (absence), ``items``, ``keys``
and ``values`` (members) are the walk's."""


def _broken(guard: str, test: str) -> str:
    return f"({guard} and {test})" if guard else f"({test})"


_NAMES = re.compile(r"\b(v|cls|PATTERN)\b")


def _template(condition: str) -> str:
    """A condition written on ``v``, ``cls`` and ``PATTERN`` (and no text literal) as a
    ``str.format`` template on them."""
    assert "'" not in condition and '"' not in condition and "{" not in condition, condition
    return _NAMES.sub(r"{\1}", condition)


def _valid(c: Constraint) -> tuple[str, Any]:
    """The condition a value meets when no rule of ``c`` objects to it, for generated code
    to test in place: a ``str.format`` template on ``v``, ``cls`` (its class), ``PATTERN``
    and ``ENUM``, and the value ``ENUM`` stands for. The type is tested once: a rule whose
    condition the type implies is written without it (a string's lengths as one chained
    comparison), and a string's enum is a set."""
    types = TYPES[c.type] if c.type is not None else []
    implied = types[0][0] if types else None
    parts = [_template(ok) for ok, _ in types]
    enum: Any = None
    for name in RULES:
        arg = getattr(c, name)
        if arg is None or (name == "max_length" and c.min_length is not None and implied == "cls is str"):
            continue
        guard, test, _ = RULES[name](arg)
        if name == "min_length" and c.max_length is not None and implied == "cls is str":
            parts.append(f"{arg!r} <= len({{v}}) <= {c.max_length!r}")
        elif name == "enum":
            enum = tuple(arg)
            if implied == "cls is str" and all(e.__class__ is str for e in arg):
                enum = frozenset(arg)  # a string equals only strings: membership by hash
            parts.append("{v} in {ENUM}")
        elif guard == implied:
            simple = test.startswith("not ") and " " not in test[4:]  # "not is_url(v)"
            parts.append(_template(test[4:]) if simple else f"not ({_template(test)})")
        else:
            parts.append(f"not {_template(_broken(guard, test))}")
    return " and ".join(parts) or "True", enum


_NAMESPACE = {"is_number": is_number, "is_integer": is_integer, "is_url": is_url, "is_date": is_date}


_COMPILED: dict[bytes, Callable[[Any], tuple[str, ...]]] = {}
"""By the constraint's own text: YAML anchors repeat one constraint on many paths and types."""


def _compile(c: Constraint) -> Callable[[Any], tuple[str, ...]]:
    """The whole constraint as one function, ``value -> messages``, written from the tables
    above: for a valid value one expression is evaluated and nothing is built."""
    key = msgspec.json.encode(c)
    check = _COMPILED.get(key)
    if check is None:
        check = _COMPILED[key] = _write(c)
    return check


def _write(c: Constraint) -> Callable[[Any], tuple[str, ...]]:
    namespace: dict[str, Any] = dict(_NAMESPACE)
    if c.pattern is not None:
        try:
            namespace["PATTERN"] = re.compile(c.pattern).fullmatch
        except re.error as e:
            raise ValueError(f"bad pattern {c.pattern!r}: {e}") from None
    lines = ["def check(v):", "    cls = v.__class__"]
    types = TYPES[c.type] if c.type is not None else []
    for ok, message in types:
        lines.append(f"    if not ({ok}): return ({message!r},)")
    written = [RULES[name](getattr(c, name)) for name in RULES if getattr(c, name) is not None]
    rules = [(_broken(guard, test), message) for guard, test, message in written]
    if rules:
        lines.append(f"    if not ({' or '.join(f'({test})' for test, _ in rules)}): return ()")
        lines.append("    found = []")
        lines += [f"    if {test}: found.append({message!r})" for test, message in rules]
        lines.append("    return tuple(found)")
    else:
        lines.append("    return ()")
    exec("\n".join(lines), namespace)  # noqa: S102 - written from the rule tables above
    check = namespace["check"]
    check.valid = (*_valid(c), namespace.get("PATTERN"))
    return check  # type: ignore[no-any-return]


class Rule:
    """One constraint, compiled."""

    __slots__ = ("check", "items", "keys", "members", "values")

    def __init__(self, c: Constraint) -> None:
        self.check = _compile(c)
        self.items = Rule(c.items) if c.items is not None else None
        self.keys = Rule(c.keys) if c.keys is not None else None
        self.values = Rule(c.values) if c.values is not None else None
        self.members = self.items is not None or self.keys is not None or self.values is not None

    def apply(self, v: Any, at: list[str], ctx: Ctx) -> None:
        for message in self.check(v):
            ctx.error(pointer(at), message)
        if self.items is not None and v.__class__ is list:
            for i, x in enumerate(v):
                for message in self.items.check(x):
                    ctx.error(pointer([*at, str(i)]), message)
        if (self.keys is not None or self.values is not None) and v.__class__ is dict:
            for k, x in v.items():
                found = list(self.keys.check(k)) if self.keys is not None else []
                if self.values is not None and x is not None:
                    found += self.values.check(x)
                for message in found:
                    ctx.error(pointer([*at, k]), message)


class _Node:
    """Constraints at one position of the event, and below it."""

    __slots__ = ("children", "required", "rules", "star")

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.children: dict[str, _Node] = {}
        self.star: _Node | None = None
        self.required = False


def _walk(node: _Node, value: Any, at: list[str], ctx: Ctx) -> None:
    cls = value.__class__
    if cls is dict and REDACTED_KEY in value:
        return  # redacted (privacy) before the constraints ran: present, not checkable
    for rule in node.rules:
        if rule.members or rule.check(value):
            rule.apply(value, at, ctx)
    if node.children:
        if cls is dict:
            for key, child in node.children.items():
                v = value.get(key)
                if v is None or v == "":
                    if child.required:
                        ctx.error(pointer([*at, key]), "is required")
                    continue
                _walk(child, v, [*at, key], ctx)
        elif cls is list:
            for key, child in node.children.items():
                if key.isascii() and key.isdigit() and int(key) < len(value):
                    _walk(child, value[int(key)], [*at, key], ctx)
    if node.star is not None and cls is list:
        star = node.star
        for i, x in enumerate(value):
            if x is None or x == "":
                if star.required:
                    ctx.error(pointer([*at, str(i)]), "is required")
                continue
            _walk(star, x, [*at, str(i)], ctx)


def _tree(constraints: Iterable[Constrained]) -> _Node:
    root = _Node()
    for c in constraints:
        node = root
        for t in c.tokens:
            if t == "*":
                node.star = node.star or _Node()
                node = node.star
            else:
                node = node.children.setdefault(t, _Node())
        node.rules.append(Rule(c.rule))
        node.required = node.required or c.rule.required
    return root


def compile_constraints(constraints: Iterable[Constrained]) -> Callable[[Any, Ctx], None]:
    """All constraints of an event type as one walk over the parts of the event that exist:
    cost follows the payload, not the number of documented constraints. Raises ValueError
    for a constraint that cannot be compiled (a bad pattern). The reference reading of the
    constraints; ``generate_constraints`` writes the same walk as code."""
    root = _tree(constraints)

    def check(event: Any, ctx: Ctx) -> None:
        _walk(root, event, [], ctx)

    return check


def generate_constraints(constraints: Iterable[Constrained], name: str) -> Callable[[Any, Ctx], None]:
    """``_walk`` over this type's tree, unrolled into one generated function: each position
    a local, each rule's check called directly, the pointer of a problem built only when
    there is one. ~3x faster than the walk on a Croct order (71 constraints)."""
    writer = _Writer()
    body = writer.node(_tree(constraints), "event", [])
    src = "\n".join([f"def {name}(event, ctx):", *(["    pass"] if not body else ["    " + b for b in body])])
    namespace: dict[str, Any] = {"REDACTED_KEY": REDACTED_KEY, "pointer": pointer, **writer.env}
    exec(compile(src, f"<constraints {name}>", "exec"), namespace)  # noqa: S102 - our own generated code
    fn = namespace[name]
    fn.__source__ = src
    return fn  # type: ignore[no-any-return]


class _Writer:
    def __init__(self) -> None:
        self.env: dict[str, Any] = dict(_NAMESPACE)
        self.names = 0

    def const(self, value: Any) -> str:
        name = self.var("K")
        self.env[name] = value
        return name

    def var(self, stem: str) -> str:
        self.names += 1
        return f"{stem}{self.names}"

    def node(self, node: _Node, v: str, at: list[str], blank: str = "") -> list[str]:
        """Lines that check the value in ``v`` against ``node`` as ``_walk`` does; ``at``
        holds expressions of its pointer's tokens; ``blank``, a test that ``v`` is not
        "", to make before a rule objects (a leaf's caller leaves "" to it: a rule
        condition holds or fails on "" without effect). A redacted object is skipped as there;
        it is tested for only where it matters: before a rule objects, before a rule on
        members, and before the children of an object."""
        cls = self.var("cls")
        where = "[" + ", ".join(at) + "]"
        redacted = f"({cls} is dict and REDACTED_KEY in {v})"
        inner: list[str] = []
        for rule in node.rules:
            r = self.var("R")
            self.env[r] = rule
            if rule.members:
                inner.append(f"if not {redacted}: {r}.apply({v}, {where}, ctx)")
                continue
            # The rule's conditions in place, on this position's locals: a valid value
            # costs no call.
            template, enum, pattern = rule.check.valid  # type: ignore[attr-defined]
            names = {"v": v, "cls": cls, "PATTERN": "", "ENUM": ""}
            if pattern is not None:
                names["PATTERN"] = self.const(pattern)
            if enum is not None:
                names["ENUM"] = self.const(enum)
            valid = template.format(**names)
            inner.append(f"if not ({valid}){blank} and not {redacted}: {r}.apply({v}, {where}, ctx)")
        if node.children:
            by_key: list[str] = []
            by_index: list[str] = []
            for key, child in node.children.items():
                cv = self.var("v")
                token = [*at, repr(key)]
                by_key.append(f"{cv} = {v}.get({key!r})")
                if child.required:
                    required = f"ctx.error(pointer([{', '.join(token)}]), 'is required')"
                    by_key += [f"if {cv} is None or {cv} == '':", f"    {required}", "else:"]
                    by_key += _indent(self.node(child, cv, token) or ["pass"])
                elif child.children or child.star is not None or any(rule.members for rule in child.rules):
                    by_key.append(f"if {cv} is not None and {cv} != '':")
                    by_key += _indent(self.node(child, cv, token) or ["pass"])
                else:  # a leaf: "" is tested for only when a rule objects
                    by_key.append(f"if {cv} is not None:")
                    by_key += _indent(self.node(child, cv, token, f" and {cv} != ''") or ["pass"])
                if key.isascii() and key.isdigit():
                    i = int(key)
                    by_index += [f"if {i} < len({v}):", f"    {cv} = {v}[{i}]"]
                    by_index += _indent(self.node(child, cv, token) or ["pass"])
            inner += [f"if {cls} is dict and REDACTED_KEY not in {v}:", *_indent(by_key)]
            if by_index:
                inner += [f"elif {cls} is list:", *_indent(by_index)]
        if node.star is not None:
            n, x = self.var("i"), self.var("x")
            token = [*at, f"str({n})"]
            if node.star.required:
                required = f"ctx.error(pointer([{', '.join(token)}]), 'is required')"
                test = [f"        if {x} is None or {x} == '':", f"            {required}", "        else:"]
            else:
                test = [f"        if {x} is not None and {x} != '':"]
            inner += [
                f"if {cls} is list:",
                f"    for {n}, {x} in enumerate({v}):",
                *test,
                *_indent(self.node(node.star, x, token) or ["pass"], 3),
            ]
        if not inner:
            return []
        return [f"{cls} = {v}.__class__", *inner]


def _indent(lines: list[str], levels: int = 1) -> list[str]:
    pad = "    " * levels
    return [pad + line for line in lines]
