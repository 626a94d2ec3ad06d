"""Summary tables: metrics per skill (``score``) and judge scores per skill (``judge``).

Plain-text tables with one row per skill group (``skills.skill_order``) and an ``all`` row;
rates are percentages with one decimal, ``-`` where a rate has no samples.
"""

from __future__ import annotations

from af2.eval.judge_summary import JudgeSummary, JudgeTally
from af2.eval.metrics import Scores, Tally


def table(header: list[str], rows: list[list[str]]) -> str:
    """Columns aligned: the first to the left, the others to the right."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *map(line, rows[:-1]), rule, line(rows[-1])])


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f}"


def metrics_table(scores: Scores) -> str:
    header = ["skill", "n", "missing", "accuracy %", "mc n", "mc acc %", "unparsed", "exact %", "norm %"]

    def row(name: str, t: Tally) -> list[str]:
        r = t.rates()
        return [
            name,
            str(t.n),
            str(t.missing),
            percent(r["accuracy"]),
            str(t.choice_n),
            percent(r["choice_accuracy"]),
            str(t.unparsed),
            percent(r["exact_match"]),
            percent(r["normalized_match"]),
        ]

    return table(header, [row(k, t) for k, t in scores.by_skill.items()] + [row("all", scores.overall)])


def judge_table(summary: JudgeSummary) -> str:
    header = ["skill", "n", "scored", "rejected", "pending", "no pred", "mean score"]

    def row(name: str, t: JudgeTally) -> list[str]:
        return [
            name,
            str(t.n),
            str(t.scored),
            str(t.rejected),
            str(t.pending),
            str(t.unpredicted),
            "-" if t.mean is None else f"{t.mean:.2f}",
        ]

    return table(header, [row(k, t) for k, t in summary.by_skill.items()] + [row("all", summary.overall)])
