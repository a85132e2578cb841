"""Branch, tag and merge methods of `lakever.Dataset` (a mixin; see dataset.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakever import refs
from lakever._merge_commit import commit_merge
from lakever._records import Branch
from lakever._resolve import locate
from lakever._types import Properties
from lakever._writer import default_author
from lakever.errors import InvalidArgument, RefNotFound, VersionNotFound
from lakever.format import Snapshot
from lakever.merge import MergeStrategy
from lakever.storage import Storage

if TYPE_CHECKING:
    from lakever.dataset import Dataset
    from lakever.log import Log

__all__ = ["RefsMixin", "resolve_source"]


class RefsMixin:
    """Tags, branches and merges, on the snapshot a `Dataset` shows."""

    __slots__ = ()

    if TYPE_CHECKING:

        @property
        def _storage(self) -> Storage: ...

        @property
        def _log(self) -> Log: ...

        @property
        def _snap(self) -> Snapshot: ...

        @property
        def snapshot_id(self) -> str: ...

        @property
        def version(self) -> int: ...

        def _require_writable(self, what: str) -> None: ...

        def _child(self, snap: Snapshot) -> Dataset: ...

    def tag(self, name: str, *, message: str | None = None, author: str | None = None) -> refs.Tag:
        """Give this snapshot an immutable name; ``open_dataset(uri, version=name)`` reopens it.

        Raises:
            InvalidRefName: the name breaks git's ref-name rules.
            RefExists: the tag exists (tags never move: delete it first to re-point it).
        """
        return refs.create_tag(
            self._storage,
            name,
            snapshot_id=self.snapshot_id,
            branch_id=self._snap.branch,
            version=self.version,
            author=author if author is not None else default_author(),
            message=message or "",
        )

    def tags(self) -> list[refs.Tag]:
        """All tags of the dataset, by name."""
        return refs.list_tags(self._storage)

    def delete_tag(self, name: str, *, author: str | None = None) -> None:
        """Delete a tag (recorded in the ref audit trail); its snapshot stays in history.

        Raises:
            RefNotFound: no such tag.
        """
        refs.delete_tag(self._storage, name, author=author or default_author())

    def branch(self, name: str, *, author: str | None = None) -> Dataset:
        """Create a branch at this snapshot; return the Dataset on it (writable).

        Commits to the new branch leave every other branch untouched.

        Raises:
            InvalidRefName: the name breaks git's ref-name rules.
            RefExists: a branch with that name exists.
        """
        info = refs.create_branch(
            self._storage,
            name,
            base=(self._snap.branch, self.version, self.snapshot_id),
            author=author or default_author(),
        )
        log = refs.line_for(self._storage, info.id)
        from lakever.dataset import Dataset
        from lakever.snapshot import SnapshotState

        return Dataset(SnapshotState(self._storage, log, self._snap, name, writable=True))

    def branches(self) -> list[Branch]:
        """All branches with their heads; main first."""
        out = []
        for info in refs.list_branches(self._storage):
            head = refs.line_for(self._storage, info.id).head()
            if head is not None:
                out.append(Branch.from_info(info, head))
        return out

    def delete_branch(self, name: str, *, author: str | None = None) -> None:
        """Delete a branch name; its commits stay readable through tags, pins and ids.

        Raises:
            RefNotFound: no such branch.
            InvalidArgument: ``name`` is ``main``.
        """
        refs.delete_branch(self._storage, name, author=author or default_author())

    def merge(
        self,
        source: str,
        *,
        message: str | None = None,
        strategy: MergeStrategy | None = None,
        author: str | None = None,
        properties: Properties | None = None,
    ) -> Dataset:
        """Merge ``source`` (a branch, tag or snapshot id) into the branch this view is on.

        Fast-forwards when this branch has not moved since ``source`` branched off;
        otherwise merges fragment by fragment against the common ancestor. A merge
        commit records both parents. Returns the Dataset at the merge commit (or at
        the head, unchanged, when there was nothing to merge).

        Raises:
            MergeConflict: both sides removed the same fragment or changed the schema
                differently; nothing is changed. Pass ``strategy="ours"`` or
                ``"theirs"`` to take one side's snapshot as the result.
            RefNotFound: ``source`` names no branch, tag or snapshot.
        """
        self._require_writable("merge")
        if strategy not in (None, "ours", "theirs"):
            raise InvalidArgument(f"strategy must be None, 'ours' or 'theirs', got {strategy!r}")
        snap = commit_merge(
            self._storage,
            self._log,
            resolve_source(self._storage, source),
            source=source,
            strategy=strategy,
            message=message,
            author=author,
            properties=properties,
        )
        return self._child(snap)


def resolve_source(storage: Storage, source: str) -> Snapshot:
    """The snapshot a merge source names (a branch head, a tag or a snapshot id)."""
    if not isinstance(source, str):
        raise InvalidArgument(f"merge source must be a branch, tag or snapshot id, got {source!r}")
    try:
        return locate(storage, version=source, branch=None).snap
    except VersionNotFound as exc:
        raise RefNotFound(str(exc), name=source) from exc
