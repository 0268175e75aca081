"""The claims counted and listed: per source and kind (a paper's claims apart from ours, identity checks and errata
apart from reproductions), the rules that decide them, and the scorecard with each claim's kind, registration, why it
did not reproduce and what its scale stands for. ``python -m bnlab claims`` prints :func:`format_text`; the
scorecard page shows :func:`tally`, :func:`rules_table` and :func:`scorecard`.
"""
from __future__ import annotations

from .claims import CHECK_VERDICTS, KINDS, VERDICTS
from .criteria import RULES
from .config import SCALES
from .tables import Table
from .triage import scale_caveat, why as triage_why



def groups(found: list) -> list:
    """The verdicts grouped as they may be counted: a paper's claims per paper, then our extensions, our
    predictions, identity checks and errata (never counted as reproductions). [(label, kind, verdicts)]"""
    out = []
    for source in dict.fromkeys(v.spec.source for v in found if v.spec.kind == "paper"):
        out.append((f"{source}: the paper's claims", "paper",
                    [v for v in found if v.spec.kind == "paper" and v.spec.source == source]))
    for kind, label in (("extension", "our extensions"), ("prediction", "our registered predictions"),
                        ("identity", "identity checks"), ("erratum", "errata")):
        chosen = [v for v in found if v.spec.kind == kind]
        if chosen:
            out.append((label, kind, chosen))
    return out


def count_text(kind: str, chosen: list) -> str:
    """"n verdict, ..." for one group, in the words its kind is judged in (zero counts left out)."""
    words = CHECK_VERDICTS.get(kind, VERDICTS)
    counts = [(sum(v.verdict == w for v in chosen), w) for w in words]
    return ", ".join(f"{n} {w}" for n, w in counts if n) or "none"


def summary_line(found: list) -> str:
    """The counts per source and kind, one clause each: a paper's claims are counted apart from ours, and identity
    checks and errata apart from reproductions."""
    return "; ".join(f"{label} ({len(chosen)}): {count_text(kind, chosen)}" for label, kind, chosen in groups(found))


def tally(found: list) -> Table:
    """The counts per source and kind as a table (the scorecard's first table)."""
    rows = [[label, KINDS[kind].split(" (")[0], len(chosen), count_text(kind, chosen)]
            for label, kind, chosen in groups(found)]
    return Table(rows, columns=["claims", "kind", "how many", "verdicts"])


def format_text(found: list) -> str:
    """The CLI's table: one line per claim (id, kind, verdict, scale, seeds, effect with the seed range, why), then
    the counts per source and kind."""
    w = max(len(v.spec.id) for v in found)
    lines = [f"{'claim':{w}s}  {'kind':10s}  {'verdict':14s}  {'scale':5s}  seeds  ours: median (seed range); why"]
    for v in found:
        why = why_not(v)
        lines.append(f"{v.spec.id:{w}s}  {v.spec.kind:10s}  {v.verdict:14s}  {v.scale:5s}  {v.seed_count:>5s}  "
                     f"{v.ours()}" + (f"; {why}" if why else ""))
    lines += ["", "Counted by source and kind (identity checks and errata are not reproductions):"]
    lines += [f"  {label} ({len(chosen)}): {count_text(kind, chosen)}" for label, kind, chosen in groups(found)]
    return "\n".join(lines)


def chapter_link(chapter: str) -> str:
    """An HTML link to a chapter's page in the built book (the scorecard sits next to the chapters)."""
    from . import chapters
    c = chapters.get(chapter)
    number = f"{c.number}. " if c.number else ""
    return f'<a href="{c.id}.html">{number}{c.slug.replace("_", " ")}</a>'


def rules_table() -> Table:
    """The verdict rules: one threshold per wording, used by every claim worded so."""
    return Table([[name, r.words, r.text()] for name, r in RULES.items()],
                 columns=["rule", "the claims' words", "criterion per seed"])


def registration(spec) -> str:
    return "before its runs" if spec.registered == "before" else "after its first numbers"


def why_not(v) -> str:
    """Why a verdict is what it is: the reason it was not judged, or for a not reproduced or mixed verdict the
    triage (``bnlab.triage``) at the shipped scale."""
    if v.why:
        return v.why
    if v.verdict in ("not reproduced", "mixed"):
        return triage_why(v.spec.id) or "not triaged yet"
    return ""


def scorecard(found: list, link=chapter_link) -> Table:
    """One row per claim: chapter (``link(chapter)``, an HTML link by default), the statement with its kind and
    source, the criterion with when it was registered, ours with its seed range, the verdict (and the prediction,
    for a registered prediction), why, and what its scale stands for."""
    rows = []
    for v in found:
        s = v.spec
        verdict = v.verdict + (f" (predicted: {s.prediction})" if s.prediction else "")
        rows.append([link(s.chapter), f"{s.paper} [{s.kind}; {s.source}]",
                     f"{s.criterion} (registered {registration(s)})", v.ours(), verdict, why_not(v),
                     f"{scale_caveat(s.experiment, v.scale) if v.scale in SCALES else v.scale}; seeds: {v.seed_count}"])
    card = Table(rows, columns=["chapter", "statement [kind; source]", "criterion per seed (registered)",
                                "ours: median (seed range)", "verdict", "why", "scale"])
    card.attrs["escape"] = link is not chapter_link
    return card


__all__ = ["groups", "count_text", "summary_line", "tally", "rules_table", "format_text", "scorecard", "why_not"]
