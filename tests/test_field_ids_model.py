"""A hypothesis state machine: evolve, append, branch and merge on several branches.

The model records, for every row, the value written under each column (a column
is a token; its name may be dropped and added again as another column). After
every step, each branch head shows exactly the rows and columns the model
predicts, each column's values are exactly the values written under that
column (a value written under one column never shows under another), and each
column has one field id that no other column, on any branch, ever has.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import lakever as lv

_ids = itertools.count(1)

#: A column: (name, token). Tokens are unique; names may be reused after a drop.
Column = tuple[str, int]


@dataclass(frozen=True)
class Node:
    """A commit in the model: fragments (tuples of row ids), schema, parents."""

    n: int
    frags: tuple[tuple[int, ...], ...]
    schema: tuple[Column, ...]
    parents: tuple[Node, ...]

    def ancestors(self) -> set[int]:
        out, todo = set(), [self]
        while todo:
            node = todo.pop()
            if node.n not in out:
                out.add(node.n)
                todo.extend(node.parents)
        return out


def value(row: int, token: int) -> int:
    return row * 1000 + token


class FieldIdMachine(RuleBasedStateMachine):
    branch_names = Bundle("branch_names")

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp()
        self.nodes: dict[int, Node] = {}
        self.lines: dict[str, list[Node]] = {}
        #: row id -> {token: value} for the columns its writer's schema had.
        self.written: dict[int, dict[int, int]] = {}
        #: branch -> the model node its head was last checked at (heads change only here).
        self.checked: dict[str, int] = {}
        #: token <-> field id, over every head ever checked: one column, one id, forever.
        self.id_of: dict[int, int] = {}
        self.token_of: dict[int, int] = {}

    def _node(self, frags, schema, parents) -> Node:
        node = Node(next(_ids), tuple(frags), tuple(schema), tuple(parents))
        self.nodes[node.n] = node
        return node

    def _commit(self, branch: str, frags, schema) -> None:
        head = self.lines[branch][-1]
        self.lines[branch].append(self._node(frags, schema, [head]))

    def _open(self, branch: str) -> lv.Dataset:
        return lv.open_dataset(self.uri, branch=branch)

    def _rows(self, n: int, schema: tuple[Column, ...]) -> tuple[tuple[int, ...], pa.Table]:
        start = next(_ids) * 100
        rows = tuple(range(start, start + n))
        cols = {"id": pa.array(rows, pa.int64())}
        for name, token in schema:
            cols[name] = pa.array([value(r, token) for r in rows], pa.int64())
            for r in rows:
                self.written.setdefault(r, {})[token] = value(r, token)
        for r in rows:
            self.written.setdefault(r, {})
        return rows, pa.table(cols)

    @initialize(target=branch_names, backend=st.sampled_from(["memory", "local"]))
    def create(self, backend):
        self.uri = f"{self.dir}/ds" if backend == "local" else f"memory://fid/{uuid.uuid4().hex}"
        rows, table = self._rows(1, ())
        lv.create_dataset(self.uri, table)
        self.lines["main"] = [self._node([rows], (), [])]
        return "main"

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(branch=branch_names, n=st.integers(1, 2))
    def append(self, branch, n):
        head = self.lines[branch][-1]
        rows, table = self._rows(n, head.schema)
        self._open(branch).append(table)
        self._commit(branch, (*head.frags, rows), head.schema)

    @rule(branch=branch_names, data=st.data(), implicit=st.booleans())
    def add(self, branch, data, implicit):
        """Add a column (explicitly, or by appending data that has it)."""
        head = self.lines[branch][-1]
        free = [n for n in ("a", "b") if n not in {c for c, _ in head.schema}]
        if not free:
            return
        name = data.draw(st.sampled_from(free), label="name")
        schema = (*head.schema, (name, next(_ids)))
        if implicit:
            rows, table = self._rows(1, schema)
            self._open(branch).append(table, schema_mode="add")
            self._commit(branch, (*head.frags, rows), schema)
        else:
            self._open(branch).evolve(add={name: pa.int64()})
            self._commit(branch, head.frags, schema)

    @rule(branch=branch_names, data=st.data())
    def drop(self, branch, data):
        head = self.lines[branch][-1]
        if not head.schema:
            return
        name, _ = data.draw(st.sampled_from(head.schema), label="column")
        self._open(branch).evolve(drop=[name])
        self._commit(branch, head.frags, tuple(c for c in head.schema if c[0] != name))

    @precondition(lambda self: len(self.lines) < 5)
    @rule(target=branch_names, source=branch_names)
    def branch(self, source):
        name = f"br{next(_ids)}"
        self._open(source).branch(name)
        self.lines[name] = list(self.lines[source])
        return name

    @precondition(lambda self: len(self.lines) > 1)
    @rule(source=branch_names, data=st.data(), strategy=st.sampled_from([None, "theirs"]))
    def merge(self, source, data, strategy):
        others = sorted(b for b in self.lines if b != source)
        into = data.draw(st.sampled_from(others), label="into")
        ours, theirs = self.lines[into][-1], self.lines[source][-1]
        base = self.nodes[max(ours.ancestors() & theirs.ancestors())]
        target = self._open(into)
        if base.n == theirs.n:
            assert target.merge(source, strategy=strategy).version == target.version
            return
        if base.n == ours.n:
            frags, schema = theirs.frags, theirs.schema
        elif ours.schema == base.schema or theirs.schema in (base.schema, ours.schema):
            b, o = set(base.frags), set(ours.frags)
            frags = ours.frags + tuple(f for f in theirs.frags if f not in b and f not in o)
            schema = theirs.schema if ours.schema == base.schema else ours.schema
        elif strategy is None:
            with pytest.raises(lv.MergeConflict) as info:
                target.merge(source)
            assert {c["kind"] for c in info.value.conflicts} == {"schema"}
            return
        else:
            frags, schema = theirs.frags, theirs.schema
        target.merge(source, strategy=strategy)
        self.lines[into].append(self._node(frags, schema, [ours, theirs]))

    @invariant()
    def every_column_has_its_own_id_and_values(self):
        for name, line in self.lines.items():
            head = line[-1]
            if self.checked.get(name) == head.n:
                continue
            self.checked[name] = head.n
            ds = self._open(name)
            for column, token in head.schema:
                fid = ds.field_ids[column]
                assert self.id_of.setdefault(token, fid) == fid, (name, column)
                assert self.token_of.setdefault(fid, token) == token, (name, column, fid)
            got = ds.to_arrow()
            assert got.column_names == ["id", *(c for c, _ in head.schema)], name
            ids = got["id"].to_pylist()
            assert ids == [r for f in head.frags for r in f], name
            for column, token in head.schema:
                expected = [self.written[r].get(token) for r in ids]
                assert got[column].to_pylist() == expected, (name, column)


FieldIdMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
TestFieldIdMachine = FieldIdMachine.TestCase
