"""Schema evolution: pure rules on Arrow schemas whose fields carry field ids.

* the compatibility table: which type changes are safe widenings (`leaf_refusal`,
  `fits`), and the message for every refused change;
* `evolve`: the explicit changes (add, rename, drop, widen) of `Dataset.evolve`;
* `plan_write`: the implicit changes of a write in ``schema_mode`` "add" or "merge";
* (what changed between two schemas is `lakever.field_tree.schema_changes`).

Field ids are never reused: new fields get ids above ``last_field_id``, so a
dropped column that is added again is a new column, and the values written
under the old id never resurface. Nothing here reads or writes files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from lakever._types import SchemaMode
from lakever.errors import InvalidArgument, SchemaEvolutionError
from lakever.field_tree import (
    Node,
    Path,
    Type,
    dotted,
    index_of,
    kind_of,
    node_of,
    schema_of,
    tname,
    tree,
)
from lakever.format import is_unicode
from lakever.schema import (
    assign_field_ids,
    check_names,
    normalize_type,
    same_logical,
    type_name,
)

__all__ = ["ColumnRef", "evolve", "fits", "leaf_refusal", "plan_write", "stats_compatible"]

#: A column: a top-level name, or a tuple of names for a nested field, e.g. ("address", "zip").
ColumnRef = str | tuple[str, ...]
_LISTS = ("list", "large_list", "fixed_list")


def _ref(path: Path) -> str:
    """How a column is named in an evolve() argument: 'a', or ('s', 'a') when nested."""
    return repr(path[0]) if len(path) == 1 else repr(path)


class _Ids:
    """Hands out fresh field ids above the dataset's ``last_field_id``."""

    def __init__(self, last: int) -> None:
        self.last = last

    def new_node(self, f: pa.Field[Any], path: Path) -> Node:
        if not f.nullable:
            raise SchemaEvolutionError(
                f"cannot add column {dotted(path)!r} as non-nullable: rows written earlier "
                "have no value for it. Add it as nullable, and require values in new rows "
                "with a contract (nullable=False) if needed",
                column=dotted(path),
                old_type=None,
                new_type=type_name(f.type),
            )
        schema, self.last = assign_field_ids(pa.schema([f]), start=self.last + 1)
        return node_of(schema.field(0))


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
        f"cannot change column {dotted(path)!r} from {old} to {new_name}: {reason}",
        column=dotted(path),
        old_type=old,
        new_type=new_name,
    )


def _refuse_required(path: Path, node: Node) -> SchemaEvolutionError:
    return SchemaEvolutionError(
        f"cannot make column {dotted(path)!r} non-nullable: fragments written earlier may "
        "hold nulls, and fragments are never rewritten. Keep it nullable and refuse nulls in "
        "new rows with a contract (nullable=False)",
        column=dotted(path),
        old_type=f"{tname(node)} (nullable)",
        new_type=f"{tname(node)} (not null)",
    )


def _list_refusal(old: Type, new: Type) -> str | None:
    ok, nk = kind_of(old), kind_of(new)
    if ok == nk == "fixed_list" and old.list_size != new.list_size:
        return "a fixed-size list keeps its size; add a new column instead"
    if ok == nk or (ok == "list" and nk == "large_list"):
        return None
    if ok == "large_list" and nk == "list":
        return "64-bit list offsets cannot become 32-bit ones; keep large_list"
    return "a list changes only its element type, or from list to large_list"


def _widen(node: Node, new: Type, nullable: bool, path: Path, ids: _Ids) -> Node:  # noqa: FBT001
    """Return ``node`` widened to type ``new`` (fresh ids for added struct fields), or raise."""
    new = normalize_type(new)
    if node.nullable and not nullable:
        raise _refuse_required(path, node)
    kind, new_kind = node.kind, kind_of(new)
    if kind == new_kind == "leaf":
        reason = leaf_refusal(node.type, new)
        if reason is not None:
            raise _refuse(path, tname(node), new, reason)
        return Node(node.id, node.name, nullable, new, [])
    if kind == new_kind == "struct":
        names = {f.name for f in new}
        for c in node.children:
            if c.name not in names:
                raise _refuse(
                    path,
                    tname(node),
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
        return Node(node.id, node.name, nullable, new, kids)
    if kind in _LISTS and new_kind in _LISTS:
        reason = _list_refusal(node.type, new)
        if reason is not None:
            raise _refuse(path, tname(node), new, reason)
        el = node.children[0]
        vf = new.value_field
        return Node(
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
        return Node(node.id, node.name, nullable, node.type, kids)
    raise _refuse(path, tname(node), new, _family(tname(node), type_name(new)))


def _merge(node: Node, data: Type, path: Path, ids: _Ids) -> Node:
    """Return the union of ``node`` and a written column's type (schema_mode="merge")."""
    data = normalize_type(data)
    kind, data_kind = node.kind, kind_of(data)
    if kind == data_kind == "leaf":
        if same_logical(node.type, data) or leaf_refusal(data, node.type) is None:
            return node  # the data is cast up to the column's type on write
        reason = leaf_refusal(node.type, data)
        if reason is not None:
            raise _refuse(path, tname(node), data, reason)
        return Node(node.id, node.name, node.nullable, data, [])
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
        return Node(node.id, node.name, node.nullable, node.type, kids)
    if kind in _LISTS and data_kind in _LISTS:
        reason = _list_refusal(node.type, data)
        if reason is None:
            container = data  # the same kind, or list data widening the column to large_list
        elif _list_refusal(data, node.type) is None:
            container = node.type  # the data is the narrower kind: cast up on write
        else:
            raise _refuse(path, tname(node), data, reason)
        el = node.children[0]
        return Node(
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
        return Node(node.id, node.name, node.nullable, node.type, kids)
    raise _refuse(path, tname(node), data, _family(tname(node), type_name(data)))


def fits(src: pa.DataType, dst: pa.DataType) -> bool:
    """Whether values of type ``src`` convert to ``dst`` exactly (struct fields by name).

    True for the same logical type, for every allowed widening, and for a struct
    missing some nullable fields of ``dst`` (they become null).
    """
    return _fits(normalize_type(src), normalize_type(dst))


def _fits(src: Type, dst: Type) -> bool:
    if same_logical(src, dst):
        return True
    sk, dk = kind_of(src), kind_of(dst)
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


def _lookup(nodes: list[Node], path: Path, what: str) -> list[Node]:
    """Return the chain of nodes from the top-level column down to ``path``."""
    chain: list[Node] = []
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
                f"{what}: no column {dotted(path)!r} in the schema (columns: {columns}); "
                "nested fields are named by a tuple path, e.g. ('address', 'zip')"
            )
        chain.append(found)
        level, parent_kind = found.children, found.kind
    return chain


def _struct_member(chain: list[Node], path: Path, what: str) -> None:
    parent = chain[-2].kind if len(chain) > 1 else "struct"
    if parent != "struct":
        raise SchemaEvolutionError(
            f"cannot {what} {dotted(path)!r}: the element of a list and the key and value of "
            "a map cannot be renamed, dropped or added; change the enclosing column instead",
            column=dotted(path),
            old_type=tname(chain[-1]),
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
    nodes = tree(schema)
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
            raise InvalidArgument(f"widen: column {dotted(path)!r} is also dropped")
        widened[chain[-1].id] = (*_type_arg(value, f"widen[{ref!r}]"), path)
    renamed: dict[int, str] = {}
    for ref, new_name in rename_m.items():
        path = _as_path(ref, "rename")
        chain = _lookup(nodes, path, "rename")
        _struct_member(chain, path, "rename")
        if not isinstance(new_name, str) or not new_name or not is_unicode(new_name):
            raise InvalidArgument(
                f"rename: the new name of {dotted(path)!r} must be a non-empty string of "
                f"valid Unicode, got {new_name!r}"
            )
        if any(n.id in dropped for n in chain):
            raise InvalidArgument(f"rename: column {dotted(path)!r} is also dropped")
        renamed[chain[-1].id] = new_name
    added: list[tuple[int | None, Path, pa.Field[Any]]] = []
    for ref, value in add_m.items():
        path = _as_path(ref, "add")
        parent: int | None = None
        if len(path) > 1:
            chain = _lookup(nodes, path[:-1], "add")
            if chain[-1].kind != "struct" or any(n.id in dropped for n in chain):
                raise InvalidArgument(
                    f"add: {dotted(path[:-1])!r} is not a struct column of the new schema; "
                    "fields can only be added to a struct"
                )
            parent = chain[-1].id
        t, nullable = _type_arg(value, f"add[{ref!r}]")
        added.append((parent, path, pa.field(path[-1], t, True if nullable is None else nullable)))

    def rebuild(level: list[Node], prefix: Path) -> list[Node]:
        out = []
        for n in level:
            if n.id in dropped:
                continue
            kids = rebuild(n.children, (*prefix, n.name))
            if n.kind == "struct" and not kids:
                raise SchemaEvolutionError(
                    f"cannot drop every field of struct {dotted((*prefix, n.name))!r}: a struct "
                    "keeps at least one field; drop the struct itself "
                    f"(drop=[{_ref((*prefix, n.name))}])",
                    column=dotted((*prefix, n.name)),
                    old_type=tname(n),
                    new_type=None,
                )
            m = Node(n.id, n.name, n.nullable, n.type, kids)
            if n.id in widened:
                t, nullable, path = widened[n.id]
                m = _widen(m, t, n.nullable if nullable is None else nullable, path, ids)
            out.append(m)
        return out

    names = [n.name for n in nodes]
    nodes = rebuild(nodes, ())
    _rename(nodes, renamed, ())
    for parent, path, f in added:
        level = nodes if parent is None else index_of(nodes)[parent][0].children
        if any(n.name == f.name for n in level):
            raise SchemaEvolutionError(
                f"cannot add column {dotted(path)!r}: a column of that name exists; pick another "
                f"name, or drop the existing one in the same call (drop=[{_ref(path)}])",
                column=dotted(path),
                old_type=next(tname(n) for n in level if n.name == f.name),
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
    out = schema_of(nodes)
    check_names(out, before=schema, what="evolve")
    return out, ids.last


def _rename(level: list[Node], renamed: dict[int, str], prefix: Path) -> None:
    new_names = [renamed.get(n.id, n.name) for n in level]
    for n, name in zip(level, new_names, strict=True):
        if n.id in renamed and new_names.count(name) > 1:
            raise SchemaEvolutionError(
                f"cannot rename {dotted((*prefix, n.name))!r} to {name!r}: a column of that name "
                "exists; rename or drop that one in the same call",
                column=dotted((*prefix, n.name)),
                old_type=tname(n),
                new_type=tname(n),
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
    nodes = tree(current)
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
    return schema_of(nodes), ids.last
