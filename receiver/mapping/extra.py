"""``extra``: what of an item its event type's plan does not read, shaped as the vendor
sent it, so nothing is lost (docs/events.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .paths import Path
from .plan import Each, MappingPlan, Node, Switch, TypePlan, Value, children

GONE = object()
"""What ``prune`` returns when nothing is left."""

Tree = dict[str, Any]
"""A prefix tree of read paths; ``True`` marks a subtree read whole."""


def _node_reads(node: Node, prefix: tuple[str, ...]) -> Iterator[tuple[str, tuple[str, ...]]]:
    paths: tuple[Path, ...] = ()
    if isinstance(node, Value):
        paths = node.sources
    elif isinstance(node, Switch):
        paths = node.selector
    for p in paths:
        if p.ns == "":
            yield "", (*prefix, *p.tokens)
        elif p.ns == "item":
            yield "item", p.tokens
    inner = (*prefix, *node.items.tokens, "*") if isinstance(node, Each) else prefix
    for child in children(node):
        yield from _node_reads(child, inner)


def trees(plan: MappingPlan, t: TypePlan) -> list[Tree]:
    """One tree per event root, of the paths the type reads, relative to the item. Identity
    and transform-argument paths are not "read" here: the canonical event has no place of
    its own for them, so they stay in ``extra``."""
    reads: list[tuple[str, tuple[str, ...]]] = [
        (r.source.ns, r.source.tokens) for r in plan.type_rules if r.source.in_payload
    ]
    for o in t.outputs:
        reads.extend(_node_reads(o.node, ()))
    out = []
    for root in plan.event_roots:
        paths = [tokens if ns == "item" else (*root, *tokens) for ns, tokens in reads if tokens]
        out.append(_tree(paths))
    return out


def _tree(paths: list[tuple[str, ...]]) -> Tree:
    root: Tree = {}
    for p in paths:
        node = root
        for t in p[:-1]:
            nxt = node.get(t)
            if nxt is True:
                break
            if nxt is None:
                nxt = node[t] = {}
            node = nxt
        else:
            node[p[-1]] = True
    return root


def prune(node: Any, tree: Any) -> Any:
    """What of ``node`` the tree does not cover (``GONE`` when nothing is left)."""
    if tree is True:
        return GONE
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            sub = tree.get(k)
            if sub is None:
                out[k] = v
            elif sub is not True:
                r = prune(v, sub)
                if r is not GONE:
                    out[k] = r
        return out if out else GONE
    if isinstance(node, list):
        sub = tree.get("*")
        if sub is None:
            return node
        if not node:
            return GONE  # an empty array the mapping reads item by item is read
        items = [prune(x, sub) for x in node]
        if all(x is GONE for x in items):
            return GONE
        return [None if x is GONE else x for x in items]
    return node


Pruner = Callable[[Any], Any]
"""``prune(node, tree)`` for one tree, generated once per event type and root."""


def pruner(tree: Tree) -> Pruner:
    """A function doing what ``prune(node, tree)`` does for this one tree: the tree is
    written into its code (each level's keys read whole as a frozenset, each subtree
    inline), so no Python call and no lookup in the tree is left per key and level."""
    env: dict[str, Any] = {"GONE": GONE, "dict": dict, "list": list}
    names = iter(range(1, 1 << 30))
    lines = ["def prune_extra(n0):", *_indent(_prune_lines(tree, "n0", "r0", env, names)), "    return r0"]
    src = "\n".join(lines)
    exec(compile(src, "<extra prune_extra>", "exec"), env)  # noqa: S102 - our own generated code
    fn = env["prune_extra"]
    fn.__source__ = src
    return fn  # type: ignore[no-any-return]


def _indent(lines: list[str]) -> list[str]:
    return ["    " + line for line in lines]


def _prune_lines(tree: Any, node: str, result: str, env: dict[str, Any], names: Iterator[int]) -> list[str]:
    """Lines that set ``result`` to ``prune(node, tree)``."""
    if tree is True:
        return [f"{result} = GONE"]
    n = next(names)
    lines = [f"if isinstance({node}, dict):"]
    whole = frozenset(k for k, sub in tree.items() if sub is True)
    subs = {k: sub for k, sub in tree.items() if sub is not True}
    k, v, x = f"k{n}", f"v{n}", f"x{n}"
    if whole and not subs:
        # Keys read whole only: an object the mapping reads all of (the usual case) is
        # found so by one subset test in C, with no loop over its members.
        env[f"W{n}"] = whole
        lines += [
            f"    if {node}.keys() <= W{n}:",
            f"        {result} = GONE",
            "    else:",  # a loop, not a comprehension: no function made and called
            f"        {result} = {{}}",
            f"        for {k}, {v} in {node}.items():",
            f"            if {k} not in W{n}: {result}[{k}] = {v}",
        ]
        return lines + _prune_array(tree, node, result, env, names)
    body: list[str] = []
    if whole:
        env[f"W{n}"] = whole
        body.append(f"if {k} in W{n}: continue")
    if subs:
        env[f"S{n}"] = frozenset(subs)
        branch: list[str] = []
        for i, (key, sub) in enumerate(subs.items()):
            branch.append(f"{'if' if i == 0 else 'elif'} {k} == {key!r}:")
            branch += _indent(_prune_lines(sub, v, x, env, names))
        body += [
            f"if {k} in S{n}:",
            *_indent(branch),
            f"    if {x} is not GONE: {result}[{k}] = {x}",
            "    continue",
        ]
    body.append(f"{result}[{k}] = {v}")
    lines += [
        f"    {result} = {{}}",
        f"    for {k}, {v} in {node}.items():",
        *_indent(_indent(body)),
        f"    if not {result}: {result} = GONE",
    ]
    return lines + _prune_array(tree, node, result, env, names)


def _prune_array(tree: Any, node: str, result: str, env: dict[str, Any], names: Iterator[int]) -> list[str]:
    """The rest of ``_prune_lines``: the node is an array, or neither an array nor an object."""
    n = next(names)
    lines: list[str] = []
    star = tree.get("*")
    lines.append(f"elif isinstance({node}, list):")
    if star is None:
        lines.append(f"    {result} = {node}")
    else:
        el, acc, y, kept = f"e{n}", f"a{n}", f"y{n}", f"kept{n}"
        # An element left with nothing is None in what is kept (the others keep their
        # indexes); nothing is kept when no element has anything left.
        lines += [
            f"    if not {node}:",
            f"        {result} = GONE",  # an empty array the mapping reads item by item is read
            "    else:",
            f"        {acc} = []",
            f"        {kept} = False",
            f"        for {el} in {node}:",
            *_indent(_indent(_indent(_prune_lines(star, el, y, env, names)))),
            f"            if {y} is GONE:",
            f"                {acc}.append(None)",
            "            else:",
            f"                {acc}.append({y})",
            f"                {kept} = True",
            f"        {result} = {acc} if {kept} else GONE",
        ]
    lines += ["else:", f"    {result} = {node}"]
    return lines
