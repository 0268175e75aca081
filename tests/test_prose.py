"""Numbers in the chapters' prose come from the data: no hand-typed result numbers, no hand-typed rankings.

The rule a chapter's markdown follows:

- a number that reports one of our results is inserted with ``{glue:text}`name``` (``bnlab.glue``);
- every other typed number is marked or of a known kind: math (``$10^{-6}$``, ``$83\\%$``: settings and the
  papers' own numbers), a reference (Fig. 3, Section 4.2, Theorem 4.1, layer #5), part of a name (VGG-16,
  CIFAR-10, 2-D), a year, or a setting followed by its unit (2000 steps, 3 seeds, batch 128, lr 0.1);
- a sentence that ranks networks (lowest, ahead of, better than, ...) either carries a glued value or is about
  the paper's figure alone (it names the paper and says nothing of ours).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(p for p in BOOK.glob("*.ipynb") if p.stem != "scorecard")

REFERENCE = re.compile(r"(?:Figs?\.|Figures?|Sections?|Sec\.|§|Tables?|Eqs?\.|eq\.|Theorems?|Thms?\.?|Lemmas?|"
                       r"Observations?|Obs\.|Chapters?|chapters?|Alg\.|Algorithms?|Appendix|App\.|Def\.|Definition|"
                       r"layers?\s*#|Layers?\s*#|#|part)\s*\(?$")
SETTING_BEFORE = re.compile(r"(?:\blr|learning rates?|rates?|width|depth|batch(?: size)?|seeds?(?: \d+,?)*(?: and)?|steps?|every|"
                            r"K\s*=|k\s*=|m\s*=|d\s*=|n\s*=|size|at most|top|first|last|scale)\s*(?:of\s*)?$", re.I)
SETTING_AFTER = re.compile(r"^\s*(?:-?\s*(?:full-batch |training |SGD |plain |measured |probed |unit )?"
                           r"(?:steps?|seeds?|layers?|-layer|samples|units|mini-batches|batches|channels|images|"
                           r"classes|epochs|points|minutes|min\b|s\b|hours?|GB|MB|px|pt|dimensions|dims|"
                           r"runs?|networks?|panels?|chapters?|words|bins|directions?|grid|probes?|evaluations?|"
                           r"processes|workers|threads|cores|GPUs?|x\s*\d|×|times the (?:step|training)|"
                           r"of (?:the )?(?:\d|every)|th\b|st\b|nd\b|rd\b|-D|D\b|TFLOP|PFLOP|GFLOP|"
                           r"to \d+ (?:steps|layers)))", re.I)
RANK = re.compile(r"\b(?:lowest|highest|ahead of|behind|best|worst|beats?|outperforms?|better than|worse than|"
                  r"smaller than|larger than|faster than|slower than|orders? of magnitude|times (?:smaller|larger|"
                  r"less|more)|lower than|higher than)\b", re.I)
NETWORK = re.compile(r"\b(?:BN|BatchNorm|batch norm\w*|standard|LP|LayerNorm|GroupNorm|rescal\w+|noisy|"
                     r"l1|l2|linf|L1|L2|L-inf)\b")
PAPER_ONLY = re.compile(r"\b(?:the paper|paper's|Santurkar|Bjorck|Ioffe|they (?:report|show|find|claim)|"
                        r"the authors)\b", re.I)
OURS = re.compile(r"\b(?:our|ours|we|here|matches|match|the table|this chapter|in our run)\b", re.I)


def _sentences(markdown: str) -> list:
    return [s.strip() for s in re.split(r"(?<=[.!?:;])\s+(?=[A-Z*$`({\[])|\n\s*\n|\n\s*[-*]\s", markdown) if s.strip()]


def _clean(text: str) -> str:
    """The prose as read for numbers: code, math, roles, links and HTML taken out (math that names an l_p norm
    stays as the word LP, for the ranking rule)."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"\{glue:[a-z]+\}`[^`]*`", " GLUED ", text)
    text = re.sub(r"\{[a-z:]+\}`[^`]*`", " ", text)
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)
    text = re.sub(r"\$[^$]*\\ell[^$]*\$", " LP ", text)
    text = re.sub(r"\$[^$]*\$", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = re.sub(r"<[^>]+>", " ", text)
    return text


def hand_typed(markdown: str) -> list:
    """(sentence, why) for each hand-typed result number or ranking in ``markdown``."""
    found = []
    for sentence in _sentences(_clean(markdown)):
        if sentence.startswith("#"):
            continue                                   # headings
        glued = "GLUED" in sentence
        for m in re.finditer(r"(?<![\w\-/.^])(\d+(?:[.,]\d+)*)(\s?%)?(?![\w\-])", sentence):
            before, after = sentence[:m.start()], sentence[m.end():]
            value = m.group(1)
            if REFERENCE.search(before) or SETTING_BEFORE.search(before) or SETTING_AFTER.match(after):
                continue
            if re.fullmatch(r"(19|20)\d\d", value):
                continue                               # a year
            if re.match(r"^\s*\)", after) and re.search(r"\(\s*$", before):
                continue                               # an enumerator such as (1)
            if re.match(r"^\.(\s|$)", after) and not before.strip():
                continue                               # a numbered list item
            found.append((sentence, f"hand-typed number {value}{m.group(2) or ''}"))
        if RANK.search(sentence) and len(NETWORK.findall(sentence)) >= 2 and not glued:
            if not (PAPER_ONLY.search(sentence) and not OURS.search(sentence)):
                found.append((sentence, f"hand-typed ranking ({RANK.search(sentence).group(0)!r})"))
    return found


def markdown_of(path: Path) -> str:
    nb = json.loads(path.read_text())
    return "\n\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")


# today's (2026-11) chapter 6 sentence that the evidence issue quotes: a ranking typed by hand, and wrong
CH6_RANKING = ("**Deep linear network.** After 2000 full-batch steps at the paper's lr of $10^{-6}$, the ranking of "
               "the final losses matches the paper's Figure 5b: $\\ell_1$ lowest, ahead of BN, then $\\ell_2$, with "
               "$\\ell_\\infty$ and the standard network last. The table shows the numbers.")


def test_the_detector_catches_a_planted_number_and_the_old_chapter_6_ranking():
    assert hand_typed("With BN the final test accuracy is 0.912, against 0.871 without.")
    assert any("ranking" in why for _, why in hand_typed(CH6_RANKING))
    assert not hand_typed("With BN the final test accuracy is {glue:text}`acc_bn`, against {glue:text}`acc_std`.")


def test_the_detector_lets_marked_numbers_and_references_pass():
    ok = ("Figure 3 of the paper (Section 4.2, Theorem 4.1) trains VGG-16 on CIFAR-10 for 15,000 steps at lr 0.1 "
          "with batch 128 and 3 seeds; the paper reports $83\\%$ test accuracy (Santurkar et al., 2018). Layer #11 "
          "is shown for $10^{-6}$.")
    assert hand_typed(ok) == []
    assert hand_typed("The paper's Figure 5b has $\\ell_1$ ahead of BN.") == []     # the paper's claim alone


@pytest.mark.parametrize("chapter", [p.name for p in CHAPTERS])
def test_chapter_prose_has_no_hand_typed_results(chapter):
    found = hand_typed(markdown_of(BOOK / chapter))
    assert not found, "\n".join(f"{why}: {s[:160]}" for s, why in found)


def glued_names(path: Path) -> set:
    """The names a notebook's committed outputs glue (``bnlab.glue`` / ``myst_nb.glue``)."""
    nb = json.loads(path.read_text())
    return {o.get("metadata", {}).get("scrapbook", {}).get("name") for c in nb["cells"] if c["cell_type"] == "code"
            for o in c.get("outputs", [])} - {None}


@pytest.mark.parametrize("chapter", [p.name for p in CHAPTERS])
def test_every_glue_role_has_its_value_in_the_committed_outputs(chapter):
    used = set(re.findall(r"\{glue:[a-z]+\}`([^`:]+)(?::[^`]*)?`", markdown_of(BOOK / chapter)))
    missing = used - glued_names(BOOK / chapter)
    assert not missing, f"glued in the prose but not in the outputs (refresh the chapter?): {sorted(missing)}"


@pytest.mark.parametrize("chapter", [p.name for p in CHAPTERS])
def test_each_glue_name_is_glued_once(chapter):
    nb = json.loads((BOOK / chapter).read_text())
    names = [o.get("metadata", {}).get("scrapbook", {}).get("name") for c in nb["cells"] if c["cell_type"] == "code"
             for o in c.get("outputs", [])]
    names = [n for n in names if n]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})   # the build warns on these


# ---- per-seed honesty: no sentence rests on a pooled number whose seeds disagree; no rounding across a stated bound --
from bnlab.glue import seeds_disagree  # noqa: E402  (the same rule that decides which pooled numbers get their range)

GLUE_ROLE = re.compile(r"\{glue:[a-z]+\}`([^`:]+)(?::[^`]*)?`")
BOUND = re.compile(r"\b(at least|more than|less than|fewer than|below|above|under|over|exceeds?|beyond|at most|"
                   r"up to|no more than|within)\s+(?:a factor of\s+)?\$?(\d+(?:\.\d+)?|two|ten)\b", re.I)
WORDS = {"two": 2.0, "ten": 10.0}
# a sentence that reports per seed: a glued range or count of seeds, or words that say the seeds differ
PER_SEED_NAME = re.compile(r"(_low|_high|_trained|_range|_n_\w+|^n_\w+|_per_seed)$")
PER_SEED_WORDS = re.compile(r"\bseeds?:|per seed|\bof (?:the )?(?:\{glue:text\}`[^`]*`|\w+) seeds\b|in (?:some|most|"
                            r"one|two|three|four|other|the other|a few|several) (?:of the )?seeds|seeds? (?:disagree|"
                            r"differ|split)|depending on the seed|range over the seeds|seed by seed", re.I)


def glue_meta(path: Path) -> dict:
    """name -> (text, bnlab metadata: the unformatted value and, for a pooled statistic, its value per seed)."""
    nb = json.loads(path.read_text())
    out = {}
    for c in nb["cells"]:
        for o in c.get("outputs", []) if c["cell_type"] == "code" else ():
            name = o.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                text = next(iter(o.get("data", {}).values()), "''")
                out[name] = (text.strip("'\""), o["metadata"].get("bnlab", {}))
    return out


def _as_float(text: str):
    try:
        return float(text.replace(",", "").rstrip("%"))
    except ValueError:
        return None


def _bounds(sentence: str) -> list:
    return [float(WORDS.get(m.group(2).lower(), m.group(2))) for m in BOUND.finditer(sentence)]


def _full_sentences(markdown: str) -> list:
    """Sentences ending in . ! or ? (a colon or semicolon does not end one here), paragraphs and list items apart."""
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z*$`({\[])|\n\s*\n|\n\s*[-*]\s", markdown) if s.strip()]


def per_seed_problems(markdown: str, meta: dict) -> list:
    """(sentence, why) for each sentence that rests on a pooled number whose seeds disagree without reporting per
    seed, and each glued number whose rounding crosses a bound the sentence states."""
    found = []
    for sentence in _full_sentences(markdown):
        names = GLUE_ROLE.findall(sentence)
        if not names:
            continue
        bounds = _bounds(sentence)
        qualified = any(PER_SEED_NAME.search(n) for n in names) or PER_SEED_WORDS.search(sentence)
        for n in names:
            text, info = meta.get(n, ("", {}))
            if "per_seed" in info and not qualified and seeds_disagree(info["per_seed"], bounds):
                found.append((sentence, f"{n} pools seeds that disagree ({info['per_seed']})"))
            shown, raw = _as_float(text), info.get("raw")
            for b in bounds if shown is not None and raw is not None else ():
                if (raw < b) != (shown < b) or (raw > b) != (shown > b):
                    found.append((sentence, f"{n} = {raw:.6g} is shown as {text}, across the bound {b:g}"))
    return found


def test_the_per_seed_check_catches_a_pooled_number_over_disagreeing_seeds_and_a_rounding_across_a_bound():
    meta = {"r": ("3.1", {"raw": 3.1, "per_seed": [0.5, 3.1, 7.0]}), "f": ("4", {"raw": 3.76}),
            "r_low": ("0.5", {"raw": 0.5}), "r_high": ("7", {"raw": 7.0})}
    assert per_seed_problems("BN lowers it by a factor of {glue:text}`r`.", meta)
    assert not per_seed_problems("BN lowers it by a factor of {glue:text}`r` (seeds: {glue:text}`r_low` to "
                                 "{glue:text}`r_high`).", meta)
    assert per_seed_problems("BN's beta is smaller by {glue:text}`f`, at least 4 times.", meta)
    assert not per_seed_problems("BN's beta is {glue:text}`f` times smaller.", meta)
    agree = {"r": ("3.1", {"raw": 3.1, "per_seed": [2.9, 3.1, 3.3]})}
    assert not per_seed_problems("BN lowers it by a factor of {glue:text}`r`.", agree)
    assert per_seed_problems("BN lowers it by at least 3, by {glue:text}`r`.", agree)     # seeds on both sides of 3


@pytest.mark.parametrize("chapter", [p.name for p in CHAPTERS])
def test_no_sentence_rests_on_seeds_that_disagree_or_rounds_across_a_bound(chapter):
    found = per_seed_problems(markdown_of(BOOK / chapter), glue_meta(BOOK / chapter))
    assert not found, "\n".join(f"{why}: {s[:200]}" for s, why in found)


def test_no_file_of_the_repository_points_readers_to_notes_outside_it():
    """The specification and notes the team works from are not in the repository: code, docs and chapters cite the
    papers or files that ship."""
    root = BOOK.parent
    outside = re.compile(r"paper-spec\.md|performance-notes\.md|chapter-after-2018\.md|toolchain\.md|STYLE\.md")
    files = [p for pattern in ("bnlab/**/*.py", "book/*.ipynb", "book/*.md", "*.md", "scripts/*", "benchmarks/*.md")
             for p in root.glob(pattern) if p.is_file()]
    found = [str(p.relative_to(root)) for p in files if outside.search(p.read_text(errors="ignore"))]
    assert files and not found, found
