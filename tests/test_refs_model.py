"""A hypothesis state machine: branches, tags, appends, overwrites and merges vs a model."""

from __future__ import annotations

import itertools
import shutil
import tempfile
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pytest
from hypothesis import assume, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

import lakever as lv

_ids = itertools.count()


@dataclass(frozen=True)
class Node:
    """A commit in the model: its fragments (each a tuple of row ids) and its parents."""

    n: int
    frags: tuple[tuple[int, ...], ...]
    parents: tuple[Node, ...]

    def ancestors(self) -> set[int]:
        out, todo = set(), [self]
        while todo:
            node = todo.pop()
            if node.n not in out:
                out.add(node.n)
                todo.extend(node.parents)
        return out

    def rows(self) -> list[int]:
        return [r for f in self.frags for r in f]


def _table(rows: tuple[int, ...]) -> pa.Table:
    return pa.table({"id": pa.array(rows, pa.int64())})


class RefMachine(RuleBasedStateMachine):
    branch_names = Bundle("branch_names")

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp()
        self.nodes: dict[int, Node] = {}
        self.lines: dict[str, list[Node]] = {}
        self.tags: dict[str, Node] = {}

    def _node(self, frags, parents) -> Node:
        node = Node(next(_ids), tuple(frags), tuple(parents))
        self.nodes[node.n] = node
        return node

    def _rows(self, n: int) -> tuple[int, ...]:
        start = next(_ids) * 1000
        return tuple(range(start, start + n))

    @initialize(target=branch_names, backend=st.sampled_from(["local", "memory"]))
    def create(self, backend):
        self.uri = f"{self.dir}/ds" if backend == "local" else f"memory://model/{uuid.uuid4().hex}"
        rows = self._rows(2)
        lv.create_dataset(self.uri, _table(rows))
        self.lines["main"] = [self._node([rows], [])]
        return "main"

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def _open(self, branch: str) -> lv.Dataset:
        return lv.open_dataset(self.uri, branch=branch)

    @rule(branch=branch_names, n=st.integers(0, 3))
    def append(self, branch, n):
        assume(branch in self.lines)
        rows = self._rows(n)
        ds = self._open(branch).append(_table(rows))
        head = self.lines[branch][-1]
        frags = head.frags + ((rows,) if n else ())
        self.lines[branch].append(self._node(frags, [head]))
        assert ds.version == len(self.lines[branch]) - 1

    @rule(branch=branch_names, n=st.integers(1, 3))
    def overwrite(self, branch, n):
        assume(branch in self.lines)
        rows = self._rows(n)
        self._open(branch).overwrite(_table(rows))
        head = self.lines[branch][-1]
        self.lines[branch].append(self._node([rows], [head]))

    @rule(target=branch_names, source=branch_names, back=st.integers(0, 3))
    def branch(self, source, back):
        assume(source in self.lines)
        line = self.lines[source]
        version = max(0, len(line) - 1 - back)
        name = f"b{next(_ids)}"
        lv.open_dataset(self.uri, branch=source, version=version).branch(name)
        self.lines[name] = line[: version + 1]
        return name

    @rule(branch=branch_names)
    def tag(self, branch):
        assume(branch in self.lines)
        name = f"t{next(_ids)}"
        self._open(branch).tag(name)
        self.tags[name] = self.lines[branch][-1]

    @rule(
        into=branch_names, source=branch_names, strategy=st.sampled_from([None, "ours", "theirs"])
    )
    def merge(self, into, source, strategy):
        assume(into in self.lines and source in self.lines)
        ours, theirs = self.lines[into][-1], self.lines[source][-1]
        common = ours.ancestors() & theirs.ancestors()
        base = self.nodes[max(common)]
        target = self._open(into)
        if base.n == theirs.n:
            assert target.merge(source, strategy=strategy).version == target.version
            return
        if base.n == ours.n:
            frags = theirs.frags
        else:
            b, o, t = set(base.frags), set(ours.frags), set(theirs.frags)
            conflict = (b - o) & (b - t)
            if conflict and strategy is None:
                with pytest.raises(lv.MergeConflict) as info:
                    target.merge(source)
                assert len(info.value.conflicts) == len(conflict)
                return
            if conflict:
                frags = ours.frags if strategy == "ours" else theirs.frags
            else:
                frags = tuple(f for f in ours.frags if f not in (b - t)) + tuple(
                    f for f in theirs.frags if f not in b and f not in o
                )
        merged = target.merge(source, strategy=strategy)
        self.lines[into].append(self._node(frags, [ours, theirs]))
        assert merged.version == len(self.lines[into]) - 1

    @rule(branch=branch_names)
    def delete_branch(self, branch):
        assume(branch != "main" and branch in self.lines)
        lv.open_dataset(self.uri).delete_branch(branch)
        del self.lines[branch]

    @invariant()
    def heads_match(self):
        if not self.lines:
            return
        for name, line in self.lines.items():
            ds = self._open(name)
            assert ds.version == len(line) - 1, name
            assert ds.to_arrow()["id"].to_pylist() == line[-1].rows(), name
            assert ds.num_rows == len(line[-1].rows())
        for name, node in self.tags.items():
            assert (
                lv.open_dataset(self.uri, version=name).to_arrow()["id"].to_pylist() == node.rows()
            )

    @invariant()
    def old_versions_match(self):
        for name, line in self.lines.items():
            for v in {0, len(line) // 2}:
                got = lv.open_dataset(self.uri, branch=name, version=v).to_arrow()["id"]
                assert got.to_pylist() == line[v].rows(), (name, v)


RefMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=20, deadline=None)
TestRefMachine = RefMachine.TestCase
