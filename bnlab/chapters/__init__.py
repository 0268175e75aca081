"""A chapter is one module. ``bnlab/chapters/<slug>.py`` holds everything the book's chapter ``book/[NN_]<slug>.ipynb``
needs from the package: the experiments it introduces, the experiments it computes (in the notebook's order), the
claims it tests, the numbers its prose reports (passages), what each result shows in one call (``show``), why its
claims that did not reproduce did not (triage), and the step of the argument it judges (the findings chapter).

Its number and its place come from ``_toc.yml`` alone (a copy ships in the package as ``_toc.yml`` next to this
file, written by ``scripts/sync_chapters.py``). Adding a chapter is one notebook, one module defining ``CHAPTER``
and one ``_toc.yml`` line; the README's "Adding a chapter" says so step by step, and ``tests/test_chapters.py``
follows the steps with a throwaway chapter.
"""
from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECKOUT_TOC = HERE.parents[1] / "_toc.yml"   # the checkout's, when bnlab runs from one
PACKAGED_TOC = HERE / "_toc.yml"              # the copy in the wheel


@dataclass(frozen=True)
class View:
    """What one ``show`` call shows of a result: its tables, its passages' numbers glued, then (with ``claims``) the
    chapter's claims on the result glued and their verdicts as a table."""

    tables: tuple = ()
    passages: tuple = ()
    claims: bool = True
    verdicts: bool = True      # with ``claims``: show the verdict table too (False: glue only)


@dataclass
class Chapter:
    """One chapter's part of the package (see the module docstring); ``slug`` is its module's name."""

    slug: str
    experiments: tuple = ()    # the Experiments this chapter introduces (each is introduced by one chapter)
    computes: tuple = ()       # the experiments its notebook runs, in order (what ``bnlab estimate`` counts)
    claims: tuple = ()         # its ClaimSpecs (``chapter`` is filled in from the toc)
    views: dict = field(default_factory=dict)   # experiment name (or another view's name) -> View
    triage: dict = field(default_factory=dict)  # claim id -> bnlab.triage.Triage, for verdicts that did not reproduce
    step: tuple = ()           # (key, the step of Santurkar et al.'s argument it judges, in words), or ()

    @property
    def id(self) -> str:
        """The notebook's name, e.g. ``04_gradient_ics`` (from ``_toc.yml``)."""
        return _entry(self.slug)[0]

    @property
    def number(self) -> int | None:
        """The chapter's number in the built book (from ``_toc.yml``)."""
        return _entry(self.slug)[1]

    def show(self, result, view: str | None = None):
        """Show ``result`` as the view of its experiment (or ``view``) says: display its tables, glue its passages'
        numbers and its claims' verdicts; returns the verdict table (or the last table) for the notebook to show."""
        from .. import glue, claims
        name = view or result.experiment
        if name not in self.views:
            raise KeyError(f"chapter {self.slug!r} has no view {name!r}; it has {sorted(self.views)}")
        v = self.views[name]
        shown = [make(result) for make in v.tables]
        if v.claims and v.verdicts:        # tables first, then the numbers, then the verdicts
            _display(shown)
            shown = [claims.verdicts(result, self.id)]
        for passage in v.passages:
            glue.glue_all(passage(result))
        if v.claims:
            glue.glue_claims(result, self.id)
        _display(shown[:-1])
        return shown[-1] if shown else None


def _display(objects) -> None:
    try:
        from IPython.display import display
    except ImportError:                                    # pragma: no cover  (bnlab runs without IPython too)
        display = print
    for obj in objects:
        display(obj)


# ---- the table of contents --------------------------------------------------------------------------------------
def slug_of(stem: str) -> str:
    """``04_gradient_ics`` -> ``gradient_ics``: a notebook's name without its number."""
    return re.sub(r"^\d+_", "", stem)


def read_toc(path: Path) -> list:
    """[(stem, number or None)] of the toc's ``book/`` entries in order; entries of a ``numbered: true`` part are
    numbered on through the book, as Jupyter Book numbers them."""
    entries, numbered, n = [], False, 0
    for line in path.read_text().splitlines():
        s = line.strip()
        if s.startswith("- caption:"):
            numbered = False
        elif s.replace(" ", "") == "numbered:true":
            numbered = True
        elif m := re.match(r"-\s*file:\s*book/(\S+)", s):
            n += numbered
            entries.append((Path(m.group(1)).stem, n if numbered else None))
    return entries


def toc_path() -> Path:
    if CHECKOUT_TOC.exists() and (CHECKOUT_TOC.parent / "bnlab" / "chapters").resolve() == HERE:
        return CHECKOUT_TOC
    return PACKAGED_TOC


@lru_cache(maxsize=None)
def _toc() -> dict:
    return {slug_of(stem): (stem, number) for stem, number in read_toc(toc_path())}


def _entry(slug: str) -> tuple:
    if slug not in _toc():
        raise LookupError(f"chapter module bnlab/chapters/{slug}.py has no line in _toc.yml: add "
                          f"`- file: book/{slug}` (or book/NN_{slug}) to its part, then run scripts/sync_chapters.py")
    return _toc()[slug]


# ---- the registry -------------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def all_chapters() -> tuple:
    """Every chapter module's ``CHAPTER``, in the order of ``_toc.yml``."""
    found = [importlib.import_module(f"{__name__}.{m.name}").CHAPTER
             for m in pkgutil.iter_modules([str(HERE)]) if not m.name.startswith("_")]
    for c in found:
        _entry(c.slug)
    order = list(_toc())
    return tuple(sorted(found, key=lambda c: order.index(c.slug)))


def get(name: str) -> Chapter:
    """A chapter by its slug (``gradient_ics``) or its notebook's name (``04_gradient_ics``)."""
    for c in all_chapters():
        if name in (c.slug, c.id):
            return c
    raise KeyError(f"unknown chapter {name!r}; one of {[c.id for c in all_chapters()]}")


@lru_cache(maxsize=None)
def experiments() -> dict:
    """{name: Experiment} over every chapter, in the book's order."""
    out = {}
    for c in all_chapters():
        for e in c.experiments:
            if e.name in out:
                raise ValueError(f"experiment {e.name!r} is introduced twice (chapter {c.slug!r}); introduce it once "
                                 "and list it in the other chapter's `computes`")
            out[e.name] = e
    return out


def computes() -> dict:
    """{chapter id: the experiment names its notebook runs} in the book's order."""
    return {c.id: tuple(c.computes) for c in all_chapters()}


@lru_cache(maxsize=None)
def claims() -> tuple:
    """Every chapter's claims, in the book's order, with their chapter filled in."""
    out = tuple(replace(s, chapter=c.id) for c in all_chapters() for s in c.claims)
    ids = [s.id for s in out]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"claim ids must be unique; repeated: {dup}")
    return out


def triage() -> dict:
    """{claim id: Triage} over every chapter."""
    return {k: t for c in all_chapters() for k, t in c.triage.items()}


def steps() -> list:
    """[(key, step in words, [chapter ids])] of the argument, in the book's order (chapters sharing a key join)."""
    out = {}
    for c in all_chapters():
        if c.step:
            key, title = c.step
            out.setdefault(key, (key, title, []))[2].append(c.id)
    return list(out.values())


__all__ = ["Chapter", "View", "all_chapters", "get", "experiments", "computes", "claims", "triage", "steps",
           "read_toc", "slug_of"]
