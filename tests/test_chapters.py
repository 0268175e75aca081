"""A chapter is one module (bnlab/chapters/<slug>.py): the registries collect every chapter's experiments and claims,
numbers and order come from _toc.yml, a new chapter is one notebook + one module + one toc line, and the move into
chapter modules changed no verdict and no config hash.

The snapshot in tests/data was taken before the move (commit "Snapshot before the chapter-module move"). When the
shipped caches are regenerated on purpose, write it again with ``python tests/test_chapters.py --snapshot``.
"""
import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bnlab import chapters, claims, experiments, results
from bnlab.scales import SCALE_BY_NAME

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 80


def verdict_record(v) -> dict:
    s = v.spec
    return {"chapter": s.chapter, "experiment": s.experiment, "kind": s.kind, "source": s.source,
            "registered": s.registered, "prediction": s.prediction, "rule": s.rule, "verdict": v.verdict,
            "effects": v.effects, "seeds": v.seeds, "why": v.why, "criterion": str(s.criterion)}


def config_hashes() -> dict:
    return {f"{name}@{s}": [e.config_hash(s)] if e.analysis is not None else sorted(r.hash for r in e.runs(s))
            for name, e in experiments.registry().items() for s in SCALE_BY_NAME}


def snapshot() -> None:
    found = claims.judge_all(results.load, "cpu")
    (DATA / "verdicts_cpu.json").write_text(json.dumps({v.spec.id: verdict_record(v) for v in found}, indent=1,
                                                       sort_keys=True) + "\n")
    (DATA / "config_hashes.json").write_text(json.dumps(config_hashes(), indent=1, sort_keys=True) + "\n")


# ---- nothing moved --------------------------------------------------------------------------------------------------
def test_every_claim_keeps_its_verdict_effects_and_registration():
    before = json.loads((DATA / "verdicts_cpu.json").read_text())
    now = {v.spec.id: json.loads(json.dumps(verdict_record(v))) for v in claims.judge_all(results.load, "cpu")}
    assert set(before) <= set(now), sorted(set(before) - set(now))
    moved = {i: (before[i], now[i]) for i in before if before[i] != now[i]}
    assert not moved, json.dumps(moved, indent=1)[:3000]


def test_every_experiment_keeps_its_config_hashes_at_every_scale():
    before = json.loads((DATA / "config_hashes.json").read_text())
    now = config_hashes()
    assert {k: now.get(k) for k in before} == before


# ---- the layout -----------------------------------------------------------------------------------------------------
def test_each_chapter_notebook_has_one_module_and_each_module_one_toc_line():
    notebooks = {p.stem for p in (ROOT / "book").glob("*.ipynb")} - {"scorecard"}
    assert notebooks == {c.id for c in chapters.all_chapters()}
    toc = chapters.read_toc(ROOT / "_toc.yml")
    order = [stem for stem, _ in toc]
    assert [c.id for c in chapters.all_chapters()] == sorted((c.id for c in chapters.all_chapters()), key=order.index)
    assert all(c.number for c in chapters.all_chapters()), "every chapter sits in a numbered part"


def test_the_toc_numbers_chapters_on_through_numbered_parts(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text("format: jb-book\nroot: book/intro\nparts:\n  - caption: A\n    chapters:\n      - file: book/card\n"
                   "  - caption: B\n    numbered: true\n    chapters:\n      - file: book/01_one\n      - file: book/two\n"
                   "  - caption: C\n    numbered: true\n    chapters:\n      - file: book/03_three\n")
    assert chapters.read_toc(toc) == [("card", None), ("01_one", 1), ("two", 2), ("03_three", 3)]
    assert chapters.slug_of("03_three") == "three" and chapters.slug_of("two") == "two"


def _library_modules():
    return [p for p in (ROOT / "bnlab").rglob("*.py") if "chapters" not in p.relative_to(ROOT / "bnlab").parts]


def test_no_library_module_outside_the_chapters_names_a_chapter():
    ids = {c.id for c in chapters.all_chapters()}
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(ids))) + r")\b")
    found = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in _library_modules()
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, "\n".join(found)


def test_no_module_over_400_lines_and_no_function_over_80():
    long_modules = [f"{p.relative_to(ROOT)}: {n}" for p in (ROOT / "bnlab").rglob("*.py")
                    if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    long_functions = []
    for p in (ROOT / "bnlab").rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long_functions.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name}: {n} lines")
    assert not long_modules and not long_functions, "\n".join(long_modules + long_functions)


def test_show_displays_the_tables_glues_the_numbers_and_returns_the_verdicts(monkeypatch):
    from bnlab import glue
    from bnlab.chapters import gradient_ics
    glued, shown = {}, []
    monkeypatch.setattr(glue, "glue", lambda name, value, spec="", seeds=None: glued.__setitem__(name, value))
    monkeypatch.setattr(chapters, "_display", lambda objs: shown.extend(objs))
    res = results.load("ics_dln", "cpu")
    table = gradient_ics.show(res)
    assert len(shown) == 2 and "claim" in table.columns
    assert {"ics_dln_contrast_averaged_verdict", "avg_ics_ratio"} <= set(glued) or \
        "ics_dln_contrast_averaged_verdict" in glued
    with pytest.raises(KeyError, match="has no view"):
        gradient_ics.show(res, "nothing")


# ---- a new chapter: one notebook, one module, one toc line ---------------------------------------------------------
THROWAWAY = '''"""Chapter: a throwaway chapter, added the way the README says."""
from bnlab import tables
from bnlab.claims import ClaimSpec, bn_pair, classify, criterion
from bnlab.criteria import better
from bnlab.experiments import Experiment
from bnlab.chapters import Chapter, View

EXPERIMENTS = (Experiment("throwaway_vgg", "ours", "the VGG at lr 0.2, with and without BN", "vgg",
                          (("none", 0.2, False), ("batch", 0.2, False))),)
CLAIMS = classify([ClaimSpec("throwaway_bn_better", "throwaway_vgg", "BN trains better at lr 0.2 (ours)",
                             "final training accuracy, BN minus standard", criterion("better", "BN"),
                             better("batch", "none", 0.2), bn_pair(0.2), needs_training=False)],
                  kinds={"extension": ("throwaway_bn_better",)})
CHAPTER = Chapter("throwaway", experiments=EXPERIMENTS, computes=("throwaway_vgg",), claims=CLAIMS,
                  views={"throwaway_vgg": View((tables.training_table,))}, step=("throwaway", "A throwaway step"))
show = CHAPTER.show
'''


# What the README's checks print, run in the copy in one process (``python -m bnlab`` is ``bnlab.__main__.main``): each
# command's exit status and output, then the registries, a live smoke run through ``bnlab.run``, the chapter's ``show``
# and the scorecard. One interpreter instead of one per command: each start imports torch again.
THROWAWAY_CHECKS = """
import contextlib, io, json, sys
from bnlab.__main__ import main

def command(*argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(list(argv))
    return {"status": status, "out": out.getvalue()}

found = {"list": command("list"), "claims": command("claims", "--scale", "smoke"),
         "estimate": command("estimate", "--scale", "smoke", "--tflops", "1"),
         "reproduce": command("reproduce", "throwaway_vgg", "--scale", "smoke")}
from bnlab import chapters, claims, results, scorecard
c = chapters.get("throwaway")
print("NUMBER", c.number, [x.id for x in chapters.all_chapters()][-2:])
import bnlab
res = bnlab.run("throwaway_vgg", mode="live", scale="smoke")
print("SHOW", type(c.show(res)).__name__)
found_claims = claims.judge_all(results.load)
card = scorecard.scorecard(found_claims)
print("CARD", [r for r in card.iloc[:, 0] if "throwaway" in r])
with open(sys.argv[1], "w") as f:
    json.dump(found, f)
"""


def test_a_new_chapter_is_one_notebook_one_module_and_one_toc_line(tmp_path):
    """Follow the README's steps in a copy: the registries, `bnlab list`, `bnlab claims`, `bnlab estimate`, the
    scorecard and the chapter's own ``show`` pick the chapter up, numbered from the toc."""
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "bnlab", copy / "bnlab", ignore=shutil.ignore_patterns("cached", "__pycache__"))
    (copy / "bnlab" / "cached").symlink_to(ROOT / "bnlab" / "cached")
    shutil.copytree(ROOT / "book", copy / "book", ignore=shutil.ignore_patterns("_build"))
    toc = (ROOT / "_toc.yml").read_text()
    last = re.findall(r"^\s*- file: book/\S+$", toc, re.M)
    entry = next(e for e in last if "findings" in e)
    (copy / "_toc.yml").write_text(toc.replace(entry, entry.replace("findings", "throwaway").replace("10_", "") + "\n"
                                               + entry))
    (copy / "bnlab" / "chapters" / "throwaway.py").write_text(THROWAWAY)
    shutil.copy(ROOT / "book" / "01_batchnorm.ipynb", copy / "book" / "throwaway.ipynb")
    env = {**os.environ, "PYTHONPATH": str(copy), "BNLAB_HOME": str(tmp_path / "home"), "BNLAB_PROGRESS": "0"}
    commands = tmp_path / "commands.json"
    proc = subprocess.run([sys.executable, "-c", THROWAWAY_CHECKS, str(commands)], cwd=copy, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(commands.read_text())
    assert {name: found[name]["status"] for name in found} == dict.fromkeys(found, 0), found
    assert "throwaway_vgg" in found["list"]["out"]
    assert "throwaway_bn_better" in found["claims"]["out"]
    est = found["estimate"]["out"]
    assert re.search(r"^throwaway\s", est, re.M), est
    out = proc.stdout
    number = chapters.get("findings").number          # the throwaway sits where the findings chapter was
    assert f"NUMBER {number} ['throwaway', '10_findings']" in out, out
    assert "SHOW Table" in out and f'href="throwaway.html">{number}. throwaway' in out, out


if __name__ == "__main__":
    if "--snapshot" in sys.argv:
        snapshot()
