"""`recops maturity`: the live system scored against Google's MLOps maturity levels, Microsoft's
MLOps maturity levels and the ML Test Score.

Every item is judged from the system's own metadata (recops.cicd.facts), never from a
questionnaire: the MLflow registry, Metaflow's runs, Prefect's deployments and flow runs, the
store's cycle and provenance records, the cycles' config and the checkout's workflows and
deploy files. Each item passes or fails (or scores 0, 0.5 or 1) with its evidence (a run id, a
version, a file and line) or the reason. The rubrics: recops.cicd.google_levels, recops.cicd.microsoft_levels,
recops.cicd.ml_test_score.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from recops.cicd.facts import Facts, Item, LevelRubric, read_facts
from recops.cicd.google_levels import GOOGLE
from recops.cicd.microsoft_levels import MICROSOFT
from recops.cicd.ml_test_score import ML_TESTS, MLTestScore, score_tests

__all__ = [
    "GOOGLE",
    "MICROSOFT",
    "ML_TESTS",
    "Facts",
    "Item",
    "Levels",
    "Score",
    "read_facts",
    "render",
    "score",
]

MICROSOFT_NAMES = {
    0: "no MLOps",
    1: "DevOps but no MLOps",
    2: "automated training",
    3: "automated model deployment",
    4: "full MLOps automated operations",
}


@dataclass(frozen=True)
class Levels:
    """A levelled rubric judged: the highest level whose items, and every lower level's, pass."""

    level: int
    items: tuple[Item, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "items": [asdict(i) for i in self.items]}


def judge_levels(rubric: LevelRubric, facts: Facts) -> Levels:
    items = tuple(Item(key, level, title, *judge(facts)) for key, level, title, judge in rubric)
    level = 0
    for candidate in sorted({i.level for i in items}):
        if not all(i.passed for i in items if i.level <= candidate):
            break
        level = candidate
    return Levels(level, items)


@dataclass(frozen=True)
class Score:
    google: Levels
    microsoft: Levels
    ml_tests: MLTestScore
    notes: dict[str, str]

    @property
    def level(self) -> int:
        """Google's level: what --require-level gates on."""
        return self.google.level

    @property
    def items(self) -> tuple[Item, ...]:
        return self.google.items

    def to_dict(self) -> dict[str, Any]:
        return {
            "google": self.google.to_dict(),
            "microsoft": {**self.microsoft.to_dict(), "name": MICROSOFT_NAMES[self.microsoft.level]},
            "ml_test_score": self.ml_tests.to_dict(),
            "notes": self.notes,
        }


def score(facts: Facts) -> Score:
    google, microsoft = judge_levels(GOOGLE, facts), judge_levels(MICROSOFT, facts)
    return Score(google, microsoft, score_tests(facts), dict(facts.notes))


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")


def _levels_table(levels: Levels) -> list[str]:
    lines = ["| level | characteristic | | evidence |", "|---|---|---|---|"]
    for item in levels.items:
        mark = "pass" if item.passed else "FAIL"
        lines.append(f"| {item.level} | {item.title} | {mark} | {_cell(item.evidence)} |")
    return lines


def render(result: Score) -> str:
    tests = result.ml_tests
    sums = ", ".join(f"{name} {points:g}" for name, points in tests.sections.items())
    lines = [
        f"## Google's MLOps maturity: level {result.google.level}",
        "",
        *_levels_table(result.google),
        "",
        f"## Microsoft's MLOps maturity: level {result.microsoft.level} "
        f"({MICROSOFT_NAMES[result.microsoft.level]})",
        "",
        *_levels_table(result.microsoft),
        "",
        f"## ML Test Score: {tests.score:g} ({tests.readiness})",
        "",
        f"The smallest of the section sums: {sums}. 1 point automated, 0.5 by hand and documented.",
        "",
        "| section | test | points | evidence or reason |",
        "|---|---|---|---|",
        *[f"| {t.section} | {t.title} | {t.points:g} | {_cell(t.evidence)} |" for t in tests.tests],
    ]
    if result.notes:
        lines += ["", *[f"- {name}: {text}" for name, text in result.notes.items()]]
    return "\n".join(lines)
