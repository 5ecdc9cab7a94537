"""Ingest reports, which count every row a loader read, used or set aside."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Examples kept per problem; enough to find the rows, small enough for a terminal.
MAX_EXAMPLES = 5


@dataclass
class Problem:
    """One kind of unusable or changed input, how often it occurred and what was done."""

    kind: str
    count: int
    policy: str
    description: str
    examples: list[str] = field(default_factory=list)


@dataclass
class IngestReport:
    """The outcome of loading one dataset.

    `rows_read` counts interaction rows in the source files and `rows_used` the unique
    user–anime pairs that went into the dataset. The rows in between are counted in
    `problems`, keyed by kind (for example "unknown_anime" or "duplicates"). Some problems
    count anime or users instead of rows, as their descriptions say.
    """

    format: str
    dataset_name: str
    source_files: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_used: int = 0
    catalog_rows: int = 0
    n_users: int = 0
    n_items: int = 0
    n_ratings: int = 0
    problems: dict[str, Problem] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add_problem(
        self,
        kind: str,
        count: int,
        policy: str,
        description: str,
        examples: list[str] | None = None,
    ) -> None:
        """Record `count` occurrences of one problem kind; zero counts are not recorded."""
        if count <= 0:
            return
        self.problems[kind] = Problem(
            kind=kind,
            count=int(count),
            policy=policy,
            description=description,
            examples=list(examples or [])[:MAX_EXAMPLES],
        )

    def problem_count(self, kind: str) -> int:
        """Return how often one problem kind occurred (0 when it did not)."""
        problem = self.problems.get(kind)
        return problem.count if problem is not None else 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "IngestReport":
        values = dict(data)
        problems = values.pop("problems", {}) or {}
        known = {name for name in cls.__dataclass_fields__}
        report = cls(**{key: value for key, value in values.items() if key in known})
        report.problems = {kind: Problem(**problem) for kind, problem in problems.items()}
        return report

    def summary_lines(self) -> list[str]:
        """Describe the ingest in a few human-readable lines."""
        lines = [
            f"dataset {self.dataset_name!r} ({self.format}) from {', '.join(self.source_files)}",
            f"catalogue: {self.catalog_rows:,} anime",
            f"interactions: {self.rows_read:,} rows read, {self.rows_used:,} used "
            f"({self.n_ratings:,} with a rating), {self.n_users:,} users, {self.n_items:,} anime",
        ]
        for problem in self.problems.values():
            lines.append(f"{problem.kind}: {problem.count:,} {problem.description} ({problem.policy})")
            for example in problem.examples:
                lines.append(f"  e.g. {example}")
        lines.extend(self.notes)
        return lines
