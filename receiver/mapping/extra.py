"""``extra``: what of an item its event type's plan does not read, shaped as the vendor
sent it, so nothing is lost (docs/events.md)."""

from __future__ import annotations

from collections.abc import Iterator
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
