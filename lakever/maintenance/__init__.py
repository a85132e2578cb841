"""Maintenance: keeping a lake that lives for years small, fast and provably intact.

One module per job, each a family of free functions over a `SnapshotState`
(`lakever.snapshot`); `Dataset` methods delegate to them in one to three lines:

* ``compact``  -- merge small fragments, materialise deletion vectors (a commit that
  changes no row);
* ``auto``     -- table properties, and the compaction they switch on after a commit;
* ``restore``  -- a new commit whose content and schema equal an older snapshot;
* ``verify``   -- check every file each snapshot references, the log chain, schemas,
  contracts and deletion vectors, and the Merkle root a pin carries;
* ``expire``   -- declare old versions unreadable (never a tag, head or retained pin);
* ``reach``    -- which stored file each retained snapshot needs (vacuum and ``usage``);
* ``vacuum``   -- delete what no retained snapshot references, after a grace period;
* ``usage``    -- storage accounting: where the bytes are, what vacuum would reclaim.

The records expiry writes and every reader checks live in `lakever.retention`.
"""
