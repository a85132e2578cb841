"""Field trees: a schema as nested nodes keyed by field id, and what changed between two.

`schema_changes` reports what changed between two schemas of a dataset, matched by
field id (a rename is a rename, not a drop plus an add). `lakever.evolution`
builds on the same trees to apply changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from lakever._records import SchemaChange
from lakever.errors import CorruptMetadata
from lakever.schema import FIELD_ID_KEY, field_id, map_type, nested_fields, type_name

__all__ = [
    "Node",
    "index_of",
    "node_of",
    "Path",
    "dotted",
    "field_of",
    "kind_of",
    "schema_changes",
    "schema_of",
    "tname",
    "tree",
]

Path = tuple[str, ...]

#: A pyarrow DataType. Typed loosely in the helpers: pyarrow-stubs expose the attributes
#: of nested types (value_field, list_size, ...) only after an is_* narrowing.
Type = Any


@dataclass(slots=True)
class Node:
    """One field: its id, name, nullability, type (leaf type or container) and children."""

    id: int
    name: str
    nullable: bool
    type: Type
    children: list[Node]

    @property
    def kind(self) -> str:
        return kind_of(self.type)


def kind_of(t: pa.DataType) -> str:
    if pa.types.is_struct(t):
        return "struct"
    if pa.types.is_list(t):
        return "list"
    if pa.types.is_large_list(t):
        return "large_list"
    if pa.types.is_fixed_size_list(t):
        return "fixed_list"
    if pa.types.is_map(t):
        return "map"
    return "leaf"


def node_of(f: pa.Field[Any]) -> Node:
    fid = field_id(f)
    if fid is None:
        raise CorruptMetadata(f"schema field {f.name!r} has no field id", path="<schema>")
    return Node(fid, f.name, f.nullable, f.type, [node_of(c) for c in nested_fields(f.type)])


def field_of(n: Node) -> pa.Field[Any]:
    kids = [field_of(c) for c in n.children]
    kind = n.kind
    t: pa.DataType
    if kind == "struct":
        t = pa.struct(kids)
    elif kind == "list":
        t = pa.list_(kids[0])
    elif kind == "large_list":
        t = pa.large_list(kids[0])
    elif kind == "fixed_list":
        t = pa.list_(kids[0], n.type.list_size)
    elif kind == "map":
        t = map_type(kids[0], kids[1], n.type.keys_sorted)
    else:
        t = n.type
    return pa.field(n.name, t, n.nullable, metadata={FIELD_ID_KEY: str(n.id).encode()})


def tree(schema: pa.Schema) -> list[Node]:
    return [node_of(f) for f in schema]


def schema_of(nodes: list[Node]) -> pa.Schema:
    return pa.schema([field_of(n) for n in nodes])


def tname(n: Node) -> str:
    return type_name(field_of(n).type)


def dotted(path: Path) -> str:
    return ".".join(path)


def index_of(nodes: list[Node]) -> dict[int, tuple[Node, Path, int | None]]:
    out: dict[int, tuple[Node, Path, int | None]] = {}

    def visit(level: list[Node], prefix: Path, parent: int | None) -> None:
        for n in level:
            out[n.id] = (n, (*prefix, n.name), parent)
            visit(n.children, (*prefix, n.name), n.id)

    visit(nodes, (), None)
    return out


def _shallow(n: Node) -> str:
    """The part of a type a change of children does not explain (for containers, the kind)."""
    if n.kind == "leaf":
        return type_name(n.type)
    if n.kind == "fixed_list":
        return f"fixed_list[{n.type.list_size}]"
    return n.kind


def schema_changes(old: pa.Schema, new: pa.Schema) -> list[SchemaChange]:
    """Return what changed from ``old`` to ``new`` (fields matched by id).

    Order: drops, renames, widenings, nullability, adds; an added or dropped
    struct is reported once, not field by field.
    """
    a, b = index_of(tree(old)), index_of(tree(new))
    by_kind: dict[str, list[SchemaChange]] = {
        k: [] for k in ("drop", "rename", "widen", "nullable", "add")
    }
    for fid, (n, path, parent) in a.items():
        if fid not in b and (parent is None or parent in b):
            by_kind["drop"].append(SchemaChange("drop", fid, dotted(path), old_type=tname(n)))
    for fid, (n, path, parent) in b.items():
        if fid not in a:
            if parent is None or parent in a:
                by_kind["add"].append(SchemaChange("add", fid, dotted(path), new_type=tname(n)))
            continue
        o, opath, _ = a[fid]
        if o.name != n.name:
            by_kind["rename"].append(
                SchemaChange("rename", fid, dotted(path), old_column=dotted(opath))
            )
        if _shallow(o) != _shallow(n) or (
            n.kind == "leaf" and not o.type.equals(n.type, check_metadata=False)
        ):
            by_kind["widen"].append(
                SchemaChange("widen", fid, dotted(path), old_type=tname(o), new_type=tname(n))
            )
        if o.nullable != n.nullable:
            by_kind["nullable"].append(SchemaChange("nullable", fid, dotted(path)))
    return [c for k in ("drop", "rename", "widen", "nullable", "add") for c in by_kind[k]]
