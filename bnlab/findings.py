"""What the book found, step by step through Santurkar et al.'s argument: the verdicts of each step grouped by kind,
the counts the findings chapter and the intro glue, and the test of our own explanation of the VGG landscape (the
same claims judged on the short and the longer reading, against the verdicts we registered before the longer runs).
"""
from __future__ import annotations

from .claims import LONG_READING_PREDICTIONS, VERDICTS, get, judge
from .scorecard import count_text
from .tables import Table

# The argument, in the book's order: (key, the step in words, the chapters whose claims judge it)
STEPS = (
    ("premise", "BatchNorm helps training", ("02_bn_vs_standard",)),
    ("noise", "Unstable layer inputs do not stop it (noisy BatchNorm)", ("03_noisy_bn",)),
    ("ics", "It does not reduce internal covariate shift, measured by gradients", ("04_gradient_ics",)),
    ("smoothness", "It smooths the loss landscape", ("05_landscape",)),
    ("lp", "Other normalisations do so too (l_p)", ("06_lp_normalization",)),
    ("theory", "The theory of Section 4", ("07_theory",)),
    ("bjorck", "It allows larger steps (Bjorck et al.)", ("08_bjorck",)),
    ("beyond", "The smoothness story, tested further (ours)", ("09_smoothness",)),
)
KIND_ORDER = ("paper", "extension", "prediction", "identity", "erratum")


def by_step(found: list) -> list:
    """[(key, step, verdicts of its claims)] in the order of the argument."""
    return [(key, title, [v for v in found if v.spec.chapter in chapters]) for key, title, chapters in STEPS]


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


def explanation_test(short, long) -> tuple[Table, dict]:
    """Each registered prediction beside the same claim on the short reading: verdicts, effects with their seed
    ranges, the prediction and whether it held. Returns the table and the glue values (``expl_*``)."""
    rows, held = [], 0
    out = {}
    for long_id, predicted in LONG_READING_PREDICTIONS.items():
        short_id = long_id.replace("_vgg_long", "_vgg")
        a, b = judge(get(short_id), short), judge(get(long_id), long)
        ok = b.verdict == predicted
        held += ok
        rows.append([short_id, f"{a.verdict}: {a.ours()}", f"{b.verdict}: {b.ours()}", predicted,
                     "yes" if ok else "no"])
        out[f"expl_{short_id}_held"] = ("yes" if ok else "no", "")
    out["expl_held"] = (held, ".0f")
    out["expl_n"] = (len(LONG_READING_PREDICTIONS), ".0f")
    table = Table(rows, columns=["claim", f"short reading ({_length(short)} steps)",
                                 f"longer reading ({_length(long)} steps)", "predicted (registered before)", "held"])
    return table, out


def _length(result) -> str:
    lengths = {r.config["train"]["steps"] for r in result.runs}
    return ", ".join(f"{n:,}" for n in sorted(lengths))


__all__ = ["STEPS", "by_step", "step_table", "counts", "explanation_test"]
