"""Schema evolution: pure rules on Arrow schemas whose fields carry field ids.

* the compatibility table: which type changes are safe widenings (`leaf_refusal`,
  `fits`), and the message for every refused change;
* `evolve`: the explicit changes (add, rename, drop, widen) of `Dataset.evolve`;
* `plan_write`: the implicit changes of a write in ``schema_mode`` "add" or "merge";
* `diff`: what changed between two schemas, matched by field id.

Field ids are never reused: new fields get ids above ``last_field_id``, so a
dropped column that is added again is a new column, and the values written
under the old id never resurface. Nothing here reads or writes files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from lakever._records import SchemaChange
from lakever._types import SchemaMode
from lakever.errors import CorruptMetadata, InvalidArgument, SchemaEvolutionError
from lakever.schema import (
    FIELD_ID_KEY,
    assign_field_ids,
    check_names,
    field_id,
    map_type,
    nested_fields,
    normalize_type,
    same_logical,
    type_name,
)

__all__ = ["ColumnRef", "diff", "evolve", "fits", "leaf_refusal", "plan_write", "stats_compatible"]

#: A column: a top-level name, or a tuple of names for a nested field, e.g. ("address", "zip").
ColumnRef = str | tuple[str, ...]
Path = tuple[str, ...]

_LISTS = ("list", "large_list", "fixed_list")

#: A pyarrow DataType. Typed loosely in the helpers: pyarrow-stubs expose the attributes
#: of nested types (value_field, list_size, ...) only after an is_* narrowing.
_Type = Any


# --------------------------------------------------------------------- field trees


@dataclass(slots=True)
class _Node:
    """One field: its id, name, nullability, type (leaf type or container) and children."""

    id: int
    name: str
    nullable: bool
    type: _Type
    children: list[_Node]

    @property
    def kind(self) -> str:
        return _kind(self.type)


def _kind(t: pa.DataType) -> str:
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


def _node(f: pa.Field[Any]) -> _Node:
    fid = field_id(f)
    if fid is None:
        raise CorruptMetadata(f"schema field {f.name!r} has no field id", path="<schema>")
    return _Node(fid, f.name, f.nullable, f.type, [_node(c) for c in nested_fields(f.type)])


def _field(n: _Node) -> pa.Field[Any]:
    kids = [_field(c) for c in n.children]
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


def _tree(schema: pa.Schema) -> list[_Node]:
    return [_node(f) for f in schema]


def _schema(nodes: list[_Node]) -> pa.Schema:
    return pa.schema([_field(n) for n in nodes])


def _tname(n: _Node) -> str:
    return type_name(_field(n).type)


def _dotted(path: Path) -> str:
    return ".".join(path)


def _ref(path: Path) -> str:
    """How a column is named in an evolve() argument: 'a', or ('s', 'a') when nested."""
    return repr(path[0]) if len(path) == 1 else repr(path)


class _Ids:
    """Hands out fresh field ids above the dataset's ``last_field_id``."""

    def __init__(self, last: int) -> None:
        self.last = last

    def new_node(self, f: pa.Field[Any], path: Path) -> _Node:
        if not f.nullable:
            raise SchemaEvolutionError(
                f"cannot add column {_dotted(path)!r} as non-nullable: rows written earlier "
                "have no value for it. Add it as nullable, and require values in new rows "
                "with a contract (nullable=False) if needed",
                column=_dotted(path),
                old_type=None,
                new_type=type_name(f.type),
            )
        schema, self.last = assign_field_ids(pa.schema([f]), start=self.last + 1)
        return _node(schema.field(0))


# ---------------------------------------------------------------- compatibility


def _int(t: pa.DataType) -> tuple[bool, int] | None:
    if pa.types.is_integer(t):
        return pa.types.is_signed_integer(t), t.bit_width
    return None


#: Bits of precision of each float width: an integer type widens to a float exactly
#: when every one of its values fits in the float's significand.
_SIGNIFICAND = {32: 24, 64: 53}


def leaf_refusal(old: pa.DataType, new: pa.DataType) -> str | None:
    """Return None if a non-nested column of type ``old`` may become ``new``, else why not.

    The text says what to do instead. This is the compatibility table of
    docs/schema-evolution.md.
    """
    if old == new:
        return None
    oi, ni = _int(old), _int(new)
    if oi and ni:
        (o_signed, o_bits), (n_signed, n_bits) = oi, ni
        if n_bits > o_bits and (o_signed == n_signed or n_signed):
            return None
        if n_bits < o_bits:
            return f"narrowing would truncate values; keep {old}"
        if o_signed and not n_signed:
            return f"negative values do not fit in an unsigned type; keep {old}"
        if o_bits == 64:
            return f"no signed type holds every {old} value; keep {old}"
        top = 2 ** (o_bits - 1) - 1
        return f"{old} values above {top} do not fit in {new}; widen to int{2 * o_bits}"
    if oi and pa.types.is_floating(new) and new.bit_width in _SIGNIFICAND:
        signed, bits = oi
        digits = _SIGNIFICAND[new.bit_width]
        if (bits - 1 if signed else bits) <= digits:
            return None
        return (
            f"{old} -> {new} is not exact: integers above 2**{digits} lose precision; keep "
            f"{old}, or add a new {new} column and backfill it"
        )
    if pa.types.is_floating(old) and pa.types.is_floating(new):
        if new.bit_width > old.bit_width:
            return None
        return f"narrowing would round values; keep {old}"
    if pa.types.is_date(old) and pa.types.is_timestamp(new):
        if new.tz is None:
            return None
        return (
            "a date only widens to a timestamp without time zone (with one, which instant "
            f"midnight is would depend on the reader); widen to pa.timestamp('{new.unit}')"
        )
    if (old, new) in ((pa.string(), pa.large_string()), (pa.binary(), pa.large_binary())):
        return None
    if (old, new) in ((pa.large_string(), pa.string()), (pa.large_binary(), pa.binary())):
        return f"64-bit offsets cannot become 32-bit ones (values could overflow); keep {old}"
    if pa.types.is_decimal(old) and pa.types.is_decimal(new):
        if new.scale != old.scale:
            return (
                f"changing the scale from {old.scale} to {new.scale} would rescale every stored "
                f"value; keep scale {old.scale} and raise the precision instead"
            )
        if new.precision < old.precision:
            return f"narrowing the precision would overflow values; keep {old}"
        return None
    return _family(str(old), str(new))


def _family(old: str, new: str) -> str:
    return (
        f"{old} and {new} are different type families; add a new column of type {new} "
        "(evolve(add=...)) and backfill it, or keep the column as it is"
    )


def _refuse(path: Path, old: str, new: pa.DataType, reason: str) -> SchemaEvolutionError:
    new_name = type_name(new)
    return SchemaEvolutionError(
        f"cannot change column {_dotted(path)!r} from {old} to {new_name}: {reason}",
        column=_dotted(path),
        old_type=old,
        new_type=new_name,
    )


def _refuse_required(path: Path, node: _Node) -> SchemaEvolutionError:
    return SchemaEvolutionError(
        f"cannot make column {_dotted(path)!r} non-nullable: fragments written earlier may "
        "hold nulls, and fragments are never rewritten. Keep it nullable and refuse nulls in "
        "new rows with a contract (nullable=False)",
        column=_dotted(path),
        old_type=f"{_tname(node)} (nullable)",
        new_type=f"{_tname(node)} (not null)",
    )


def _list_refusal(old: _Type, new: _Type) -> str | None:
    ok, nk = _kind(old), _kind(new)
    if ok == nk == "fixed_list" and old.list_size != new.list_size:
        return "a fixed-size list keeps its size; add a new column instead"
    if ok == nk or (ok == "list" and nk == "large_list"):
        return None
    if ok == "large_list" and nk == "list":
        return "64-bit list offsets cannot become 32-bit ones; keep large_list"
    return "a list changes only its element type, or from list to large_list"


def _widen(node: _Node, new: _Type, nullable: bool, path: Path, ids: _Ids) -> _Node:  # noqa: FBT001
    """Return ``node`` widened to type ``new`` (fresh ids for added struct fields), or raise."""
    new = normalize_type(new)
    if node.nullable and not nullable:
        raise _refuse_required(path, node)
    kind, new_kind = node.kind, _kind(new)
    if kind == new_kind == "leaf":
        reason = leaf_refusal(node.type, new)
        if reason is not None:
            raise _refuse(path, _tname(node), new, reason)
        return _Node(node.id, node.name, nullable, new, [])
    if kind == new_kind == "struct":
        names = {f.name for f in new}
        for c in node.children:
            if c.name not in names:
                raise _refuse(
                    path,
                    _tname(node),
                    new,
                    f"it lacks the field {c.name!r}; widening never removes fields: drop it "
                    f"with drop=[{_ref((*path, c.name))}]",
                )
        old = {c.name: c for c in node.children}
        kids = [
            _widen(old[f.name], f.type, f.nullable, (*path, f.name), ids)
            if f.name in old
            else ids.new_node(f, (*path, f.name))
            for f in new
        ]
        return _Node(node.id, node.name, nullable, new, kids)
    if kind in _LISTS and new_kind in _LISTS:
        reason = _list_refusal(node.type, new)
        if reason is not None:
            raise _refuse(path, _tname(node), new, reason)
        el = node.children[0]
        vf = new.value_field
        return _Node(
            node.id,
            node.name,
            nullable,
            new,
            [_widen(el, vf.type, vf.nullable, (*path, el.name), ids)],
        )
    if kind == new_kind == "map":
        key, value = node.children
        kids = [
            _widen(key, new.key_type, False, (*path, key.name), ids),
            _widen(value, new.item_type, new.item_field.nullable, (*path, value.name), ids),
        ]
        return _Node(node.id, node.name, nullable, node.type, kids)
    raise _refuse(path, _tname(node), new, _family(_tname(node), type_name(new)))


def _merge(node: _Node, data: _Type, path: Path, ids: _Ids) -> _Node:
    """Return the union of ``node`` and a written column's type (schema_mode="merge")."""
    data = normalize_type(data)
    kind, data_kind = node.kind, _kind(data)
    if kind == data_kind == "leaf":
        if same_logical(node.type, data) or leaf_refusal(data, node.type) is None:
            return node  # the data is cast up to the column's type on write
        reason = leaf_refusal(node.type, data)
        if reason is not None:
            raise _refuse(path, _tname(node), data, reason)
        return _Node(node.id, node.name, node.nullable, data, [])
    if kind == data_kind == "struct":
        by_name = {f.name: f for f in data}
        kids = [
            _merge(c, by_name[c.name].type, (*path, c.name), ids) if c.name in by_name else c
            for c in node.children
        ]
        have = {c.name for c in node.children}
        kids += [
            ids.new_node(pa.field(f.name, f.type, True), (*path, f.name))
            for f in data
            if f.name not in have
        ]
        return _Node(node.id, node.name, node.nullable, node.type, kids)
    if kind in _LISTS and data_kind in _LISTS:
        reason = _list_refusal(node.type, data)
        if reason is None:
            container = data  # the same kind, or list data widening the column to large_list
        elif _list_refusal(data, node.type) is None:
            container = node.type  # the data is the narrower kind: cast up on write
        else:
            raise _refuse(path, _tname(node), data, reason)
        el = node.children[0]
        return _Node(
            node.id,
            node.name,
            node.nullable,
            container,
            [_merge(el, data.value_type, (*path, el.name), ids)],
        )
    if kind == data_kind == "map":
        key, value = node.children
        kids = [
            _merge(key, data.key_type, (*path, key.name), ids),
            _merge(value, data.item_type, (*path, value.name), ids),
        ]
        return _Node(node.id, node.name, node.nullable, node.type, kids)
    raise _refuse(path, _tname(node), data, _family(_tname(node), type_name(data)))


def fits(src: pa.DataType, dst: pa.DataType) -> bool:
    """Whether values of type ``src`` convert to ``dst`` exactly (struct fields by name).

    True for the same logical type, for every allowed widening, and for a struct
    missing some nullable fields of ``dst`` (they become null).
    """
    return _fits(normalize_type(src), normalize_type(dst))


def _fits(src: _Type, dst: _Type) -> bool:
    if same_logical(src, dst):
        return True
    sk, dk = _kind(src), _kind(dst)
    if sk == dk == "leaf":
        return leaf_refusal(src, dst) is None
    if sk == dk == "struct":
        dst_fields = {f.name: f for f in dst}
        src_names = {f.name for f in src}
        return all(
            f.name in dst_fields and _fits(f.type, dst_fields[f.name].type) for f in src
        ) and all(f.nullable for f in dst if f.name not in src_names)
    if sk in _LISTS and dk in _LISTS:
        return _list_refusal(src, dst) is None and _fits(src.value_type, dst.value_type)
    if sk == dk == "map":
        return _fits(src.key_type, dst.key_type) and _fits(src.item_type, dst.item_type)
    return False


def stats_compatible(old: pa.DataType, new: pa.DataType) -> bool:
    """Whether min/max recorded for a column of type ``old`` are valid bounds under ``new``."""
    if old == new:
        return True
    numeric = (pa.types.is_integer, pa.types.is_floating)
    if any(p(old) for p in numeric) and any(p(new) for p in numeric):
        return True
    if pa.types.is_decimal(old) and pa.types.is_decimal(new):
        return True
    strings = (pa.string(), pa.large_string())
    return old in strings and new in strings


# ------------------------------------------------------------------- evolve


def _as_path(ref: Any, what: str) -> Path:
    if isinstance(ref, str) and ref:
        return (ref,)
    if isinstance(ref, tuple) and ref and all(isinstance(p, str) and p for p in ref):
        return ref
    raise InvalidArgument(
        f"{what}: a column is named by a non-empty string, or a tuple of strings for a nested "
        f"field (e.g. ('address', 'zip')); got {ref!r}"
    )


def _lookup(nodes: list[_Node], path: Path, what: str) -> list[_Node]:
    """Return the chain of nodes from the top-level column down to ``path``."""
    chain: list[_Node] = []
    level, parent_kind = nodes, "struct"
    for name in path:
        found = None
        for i, n in enumerate(level):
            alias = (parent_kind in _LISTS and name in ("element", "item")) or (
                parent_kind == "map" and name == ("key", "value")[i]
            )
            if n.name == name or alias:
                found = n
                break
        if found is None:
            columns = [n.name for n in nodes]
            raise InvalidArgument(
                f"{what}: no column {_dotted(path)!r} in the schema (columns: {columns}); "
                "nested fields are named by a tuple path, e.g. ('address', 'zip')"
            )
        chain.append(found)
        level, parent_kind = found.children, found.kind
    return chain


def _struct_member(chain: list[_Node], path: Path, what: str) -> None:
    parent = chain[-2].kind if len(chain) > 1 else "struct"
    if parent != "struct":
        raise SchemaEvolutionError(
            f"cannot {what} {_dotted(path)!r}: the element of a list and the key and value of "
            "a map cannot be renamed, dropped or added; change the enclosing column instead",
            column=_dotted(path),
            old_type=_tname(chain[-1]),
            new_type=None,
        )


def _type_arg(value: Any, what: str) -> tuple[pa.DataType, bool | None]:
    if isinstance(value, pa.Field):
        return value.type, value.nullable
    if isinstance(value, pa.DataType):
        return value, None
    raise InvalidArgument(
        f"{what}: expected a pyarrow DataType (e.g. pa.int64()) or pa.field(...), got {value!r}"
    )


def _mapping(value: Any, what: str) -> Mapping[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{what} must be a dict, got {value!r}")
    return value


def evolve(
    schema: pa.Schema,
    last_field_id: int,
    *,
    add: Mapping[ColumnRef, pa.DataType | pa.Field[Any]] | None = None,
    rename: Mapping[ColumnRef, str] | None = None,
    drop: Iterable[ColumnRef] | None = None,
    widen: Mapping[ColumnRef, pa.DataType | pa.Field[Any]] | None = None,
) -> tuple[pa.Schema, int]:
    """Apply explicit changes; return the new schema and the new ``last_field_id``.

    Keys of ``rename``, ``drop`` and ``widen`` name columns of ``schema`` (current
    names); keys of ``add`` name new columns (a tuple adds a field to a struct).
    Changes apply in the order drop, widen, rename, add, so a name may be dropped
    and added again in one call: the new column gets a new field id.

    Raises:
        SchemaEvolutionError: a refused change (narrowing, new type family,
            non-nullable, name collision, ...), naming the column and what to do.
        InvalidArgument: a malformed argument, an unknown column, or a new name DuckDB
            cannot use (empty, a control character, equal to another ignoring case).
    """
    add_m, rename_m, widen_m = (
        _mapping(add, "add"),
        _mapping(rename, "rename"),
        _mapping(widen, "widen"),
    )
    if isinstance(drop, str):
        raise InvalidArgument(f"drop must be a list of columns, got the string {drop!r}")
    drop_l = list(drop or ())
    if not (add_m or rename_m or drop_l or widen_m):
        raise InvalidArgument("evolve needs at least one of add=, rename=, drop= or widen=")
    nodes = _tree(schema)
    ids = _Ids(last_field_id)

    dropped: set[int] = set()
    for ref in drop_l:
        path = _as_path(ref, "drop")
        chain = _lookup(nodes, path, "drop")
        _struct_member(chain, path, "drop")
        dropped.add(chain[-1].id)
    widened: dict[int, tuple[pa.DataType, bool | None, Path]] = {}
    for ref, value in widen_m.items():
        path = _as_path(ref, "widen")
        chain = _lookup(nodes, path, "widen")
        if any(n.id in dropped for n in chain):
            raise InvalidArgument(f"widen: column {_dotted(path)!r} is also dropped")
        widened[chain[-1].id] = (*_type_arg(value, f"widen[{ref!r}]"), path)
    renamed: dict[int, str] = {}
    for ref, new_name in rename_m.items():
        path = _as_path(ref, "rename")
        chain = _lookup(nodes, path, "rename")
        _struct_member(chain, path, "rename")
        if not isinstance(new_name, str) or not new_name:
            raise InvalidArgument(
                f"rename: the new name of {_dotted(path)!r} must be a non-empty string"
            )
        if any(n.id in dropped for n in chain):
            raise InvalidArgument(f"rename: column {_dotted(path)!r} is also dropped")
        renamed[chain[-1].id] = new_name
    added: list[tuple[int | None, Path, pa.Field[Any]]] = []
    for ref, value in add_m.items():
        path = _as_path(ref, "add")
        parent: int | None = None
        if len(path) > 1:
            chain = _lookup(nodes, path[:-1], "add")
            if chain[-1].kind != "struct" or any(n.id in dropped for n in chain):
                raise InvalidArgument(
                    f"add: {_dotted(path[:-1])!r} is not a struct column of the new schema; "
                    "fields can only be added to a struct"
                )
            parent = chain[-1].id
        t, nullable = _type_arg(value, f"add[{ref!r}]")
        added.append((parent, path, pa.field(path[-1], t, True if nullable is None else nullable)))

    def rebuild(level: list[_Node], prefix: Path) -> list[_Node]:
        out = []
        for n in level:
            if n.id in dropped:
                continue
            kids = rebuild(n.children, (*prefix, n.name))
            if n.kind == "struct" and not kids:
                raise SchemaEvolutionError(
                    f"cannot drop every field of struct {_dotted((*prefix, n.name))!r}: a struct "
                    "keeps at least one field; drop the struct itself "
                    f"(drop=[{_ref((*prefix, n.name))}])",
                    column=_dotted((*prefix, n.name)),
                    old_type=_tname(n),
                    new_type=None,
                )
            m = _Node(n.id, n.name, n.nullable, n.type, kids)
            if n.id in widened:
                t, nullable, path = widened[n.id]
                m = _widen(m, t, n.nullable if nullable is None else nullable, path, ids)
            out.append(m)
        return out

    names = [n.name for n in nodes]
    nodes = rebuild(nodes, ())
    _rename(nodes, renamed, ())
    for parent, path, f in added:
        level = nodes if parent is None else _index(nodes)[parent][0].children
        if any(n.name == f.name for n in level):
            raise SchemaEvolutionError(
                f"cannot add column {_dotted(path)!r}: a column of that name exists; pick another "
                f"name, or drop the existing one in the same call (drop=[{_ref(path)}])",
                column=_dotted(path),
                old_type=next(_tname(n) for n in level if n.name == f.name),
                new_type=type_name(f.type),
            )
        level.append(ids.new_node(f, path))
    if not nodes:
        raise SchemaEvolutionError(
            "cannot drop every column: a dataset keeps at least one column; add the new "
            "columns in the same call (add=...) or create a new dataset",
            column=", ".join(names),
            old_type=None,
            new_type=None,
        )
    out = _schema(nodes)
    check_names(out, before=schema, what="evolve")
    return out, ids.last


def _rename(level: list[_Node], renamed: dict[int, str], prefix: Path) -> None:
    new_names = [renamed.get(n.id, n.name) for n in level]
    for n, name in zip(level, new_names, strict=True):
        if n.id in renamed and new_names.count(name) > 1:
            raise SchemaEvolutionError(
                f"cannot rename {_dotted((*prefix, n.name))!r} to {name!r}: a column of that name "
                "exists; rename or drop that one in the same call",
                column=_dotted((*prefix, n.name)),
                old_type=_tname(n),
                new_type=_tname(n),
            )
    for n, name in zip(level, new_names, strict=True):
        _rename(n.children, renamed, (*prefix, name))
        n.name = name


# --------------------------------------------------------------- implicit changes


def plan_write(
    current: pa.Schema, last_field_id: int, data: pa.Schema, mode: SchemaMode
) -> tuple[pa.Schema, int]:
    """Return the schema a write in ``mode`` commits under, and the new ``last_field_id``.

    ``strict`` changes nothing; ``add`` adds the data's new columns (nullable,
    fresh field ids); ``merge`` also widens columns whose data type is wider
    (and adds struct fields). Differences left over are reported by `conform`.

    Raises:
        SchemaEvolutionError: (merge) a column's data type cannot be merged.
    """
    if mode == "strict":
        return current, last_field_id
    nodes = _tree(current)
    ids = _Ids(last_field_id)
    index = {n.name: i for i, n in enumerate(nodes)}
    if mode == "merge":
        for f in data:
            if f.name in index:
                i = index[f.name]
                nodes[i] = _merge(nodes[i], f.type, (f.name,), ids)
    for f in data:
        if f.name not in index:
            nodes.append(ids.new_node(pa.field(f.name, normalize_type(f.type), True), (f.name,)))
    return _schema(nodes), ids.last


# ------------------------------------------------------------------------- diff


def _index(nodes: list[_Node]) -> dict[int, tuple[_Node, Path, int | None]]:
    out: dict[int, tuple[_Node, Path, int | None]] = {}

    def visit(level: list[_Node], prefix: Path, parent: int | None) -> None:
        for n in level:
            out[n.id] = (n, (*prefix, n.name), parent)
            visit(n.children, (*prefix, n.name), n.id)

    visit(nodes, (), None)
    return out


def _shallow(n: _Node) -> str:
    """The part of a type a change of children does not explain (for containers, the kind)."""
    if n.kind == "leaf":
        return type_name(n.type)
    if n.kind == "fixed_list":
        return f"fixed_list[{n.type.list_size}]"
    return n.kind


def diff(old: pa.Schema, new: pa.Schema) -> list[SchemaChange]:
    """Return what changed from ``old`` to ``new`` (fields matched by id).

    Order: drops, renames, widenings, nullability, adds; an added or dropped
    struct is reported once, not field by field.
    """
    a, b = _index(_tree(old)), _index(_tree(new))
    by_kind: dict[str, list[SchemaChange]] = {
        k: [] for k in ("drop", "rename", "widen", "nullable", "add")
    }
    for fid, (n, path, parent) in a.items():
        if fid not in b and (parent is None or parent in b):
            by_kind["drop"].append(SchemaChange("drop", fid, _dotted(path), old_type=_tname(n)))
    for fid, (n, path, parent) in b.items():
        if fid not in a:
            if parent is None or parent in a:
                by_kind["add"].append(SchemaChange("add", fid, _dotted(path), new_type=_tname(n)))
            continue
        o, opath, _ = a[fid]
        if o.name != n.name:
            by_kind["rename"].append(
                SchemaChange("rename", fid, _dotted(path), old_column=_dotted(opath))
            )
        if _shallow(o) != _shallow(n) or (
            n.kind == "leaf" and not o.type.equals(n.type, check_metadata=False)
        ):
            by_kind["widen"].append(
                SchemaChange("widen", fid, _dotted(path), old_type=_tname(o), new_type=_tname(n))
            )
        if o.nullable != n.nullable:
            by_kind["nullable"].append(SchemaChange("nullable", fid, _dotted(path)))
    return [c for k in ("drop", "rename", "widen", "nullable", "add") for c in by_kind[k]]
