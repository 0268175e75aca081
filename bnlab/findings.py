"""What the book found, step by step through Santurkar et al.'s argument: the verdicts of each step grouped by kind,
and the counts the findings chapter and the intro glue. Each chapter module names the step it judges
(``Chapter.step``).
"""
from __future__ import annotations

from .claims import VERDICTS
from .scorecard import count_text
from .tables import Table

KIND_ORDER = ("paper", "extension", "prediction", "identity", "erratum")


def by_step(found: list) -> list:
    """[(key, step, verdicts of its claims)] in the order of the argument."""
    from . import chapters as book
    return [(key, title, [v for v in found if v.spec.chapter in ids]) for key, title, ids in book.steps()]


def step_table(found: list) -> Table:
    """Per step, the verdicts counted per kind (a paper's claims apart from ours and from the checks)."""
    rows = []
    for _, title, chosen in by_step(found):
        cells = []
        for kind in ("paper", "extension", "prediction"):
            part = [v for v in chosen if v.spec.kind == kind]
            cells.append(count_text(kind, part) if part else "")
        checks = [v for v in chosen if v.spec.kind in ("identity", "erratum")]
        cells.append("; ".join(count_text(k, [v for v in checks if v.spec.kind == k])
                               for k in ("identity", "erratum") if any(v.spec.kind == k for v in checks)))
        rows.append([title, *cells])
    return Table(rows, columns=["step of the argument", "the papers' claims", "our extensions",
                                "our registered predictions", "identity checks and errata"])


def counts(found: list) -> dict:
    """Glue values ``{name: (value, spec)}``: per step the papers' claims reproduced, not reproduced, mixed and not
    meaningful, and the same over the whole book, by source."""
    def tally(prefix: str, chosen: list) -> dict:
        return {f"{prefix}_n": (len(chosen), ".0f"),
                **{f"{prefix}_{w.replace(' ', '_')}": (sum(v.verdict == w for v in chosen), ".0f") for w in VERDICTS}}
    out = {}
    for key, _, chosen in by_step(found) + [("all", "", found)]:
        out |= tally(f"{key}_paper", [v for v in chosen if v.spec.kind == "paper"])
    out |= tally("santurkar", [v for v in found if v.spec.kind == "paper" and v.spec.source.startswith("Santurkar")])
    ours = [v for v in found if v.spec.kind == "extension"]
    out["extension_n"] = (len(ours), ".0f")
    out["extension_reproduced"] = (sum(v.verdict == "reproduced" for v in ours), ".0f")
    checks = [v for v in found if v.spec.kind in ("identity", "erratum")]
    out["checks_n"] = (len(checks), ".0f")
    out["checks_hold"] = (sum(v.verdict in ("holds", "confirmed") for v in checks), ".0f")
    return out


__all__ = ["by_step", "step_table", "counts"]
