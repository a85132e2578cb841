"""What a dataset card shows, gathered once (`lakever.ml.card.gather`) and rendered as
HTML (`lakever.ml._card_html`) or Markdown (`lakever.ml._card_md`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lakever._records import Commit
from lakever.ml.drift import ColumnProfile, DriftReport
from lakever.refs import Tag

__all__ = ["CardData", "SchemaRow"]


@dataclass(frozen=True, slots=True)
class SchemaRow:
    """One column of the schema with what the contract says about it."""

    field_id: int | None
    name: str
    type: str
    nullable: bool
    contract: list[str]


@dataclass(frozen=True, slots=True)
class CardData:
    """Everything a card shows, gathered once and rendered as HTML or Markdown."""

    uri: str
    name: str
    ref: str
    version: int
    branch: str
    snapshot_id: str
    timestamp: datetime
    pin: str
    commit: Commit
    schema: list[SchemaRow]
    contract_name: str | None
    contract_rules: list[str]
    primary_key: list[str] | None
    commits: list[Commit]
    older_commits: int
    tags: list[Tag]
    tags_by_snapshot: dict[str, list[str]]
    profiles: dict[str, ColumnProfile]
    against: str | None
    against_note: str
    report: DriftReport | None

    @property
    def label(self) -> str:
        """How the card names its snapshot in legends: the ref, or ``version N``."""
        return self.ref if self.ref != str(self.version) else f"version {self.version}"
