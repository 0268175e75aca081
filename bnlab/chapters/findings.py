"""Chapter: what the book found: every verdict by step of the argument and by kind (``bnlab.findings``), and the test
of our own explanation of the VGG landscape (``bnlab.chapters.landscape.explanation``)."""
from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from dataclasses import replace

from ..claims import VERDICTS, judge
from ..tables import Table
from . import Chapter, triage

CHAPTER = Chapter("findings", computes=("landscape_vgg", "landscape_vgg_long"))

SHORT = ("not reproduced", "mixed")     # the verdicts that carry a reason (``bnlab.triage``)


# ---- exercises ------------------------------------------------------------------------------------------------------
def reasons(found: list, kind: str = "paper") -> Counter:
    """How many of the ``kind`` claims that fell short (not reproduced or mixed) carry each triage reason
    (``bnlab.triage.REASONS``; "none" where a claim has none)."""
    reason_of = {i: t.reason for i, t in triage().items()}
    return Counter(reason_of.get(v.spec.id, "none") for v in found if v.spec.kind == kind and v.verdict in SHORT)


@contextmanager
def rule_at(rule: str, threshold: float):
    """While the block runs, the wording rule ``rule`` of ``bnlab.criteria.RULES`` has ``threshold``: every claim
    worded so is judged by it. The registered threshold is restored afterwards, also after an error."""
    from ..criteria import RULES
    registered = RULES[rule]
    RULES[rule] = replace(registered, threshold=threshold)
    try:
        yield
    finally:
        RULES[rule] = registered


def rejudge(found: list, rule: str, threshold: float, load, kind: str = "paper") -> list:
    """The ``kind`` claims of ``found`` decided by ``rule`` that have a result, judged again on the same results
    (``load(experiment, scale)``, each loaded once) with the rule's threshold at ``threshold``."""
    chosen = [v for v in found if v.spec.rule == rule and v.spec.kind == kind and v.seeds]
    cache = {}
    with rule_at(rule, threshold):
        return [judge(v.spec, cache.setdefault(v.spec.experiment, load(v.spec.experiment, v.scale)))
                for v in chosen]


def threshold_sensitivity(found: list, rule: str, thresholds, load, kind: str = "paper") -> tuple:
    """Per threshold of ``rule``: how many of its ``kind`` claims get each verdict, and which change verdict against
    the registered threshold. Returns the table and glue values ``ex_<rule>_<threshold>_<verdict>`` (counts) and
    ``ex_<rule>_<threshold>_changed``."""
    base = {v.spec.id: v.verdict for v in found}
    rows, out = [], {}
    for t in thresholds:
        again = rejudge(found, rule, t, load, kind)
        counts = Counter(v.verdict for v in again)
        changed = [f"{v.spec.id} ({base[v.spec.id]} -> {v.verdict})" for v in again if v.verdict != base[v.spec.id]]
        rows.append([f"{t:g}", *(counts[w] for w in VERDICTS), "; ".join(changed) or "-"])
        tag = f"ex_{rule.replace(' ', '_')}_{t:g}"
        out |= {f"{tag}_{w.replace(' ', '_')}": (counts[w], ".0f") for w in VERDICTS}
        out[f"{tag}_changed"] = (len(changed), ".0f")
        out[f"ex_{rule.replace(' ', '_')}_n"] = (len(again), ".0f")
    return Table(rows, columns=["threshold", *VERDICTS, "verdicts changed"]), out
