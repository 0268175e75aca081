"""Write the parts every chapter shares from their one source: the Colab and source links and the `%pip` URL from
`_config.yml` (`repository.url`, `repository.branch`, `launch_buttons.colab_url`), and the parameters cell with
the valid MODE and SCALE values from `bnlab.config`; and the wheel's copy of `_toc.yml` (`bnlab/chapters/_toc.yml`).
`--check` changes nothing and exits 1 where a chapter disagrees (tests/test_notebooks.py runs it). Every page with a Colab button gets the install cell: the chapters and
book/scorecard.ipynb (PAGES), which has no links line or parameters cell.

Where the book is published: $BNLAB_REPOSITORY ("owner/name", "owner/name@branch" or a GitHub URL) and $BNLAB_BRANCH
replace `repository.url` / `repository.branch` when set (.github/workflows/book.yml sets them from the repository
it runs in); unset, _config.yml's placeholder stays, which the committed notebooks carry.

    python scripts/sync_chapters.py            # rewrite the chapters (book/*.ipynb) and book/scorecard.ipynb in place
    python scripts/sync_chapters.py --check    # list disagreements, exit 1 if any
    python scripts/sync_chapters.py --write-config OUT.yml   # _config.yml with the repository above (the build's)
"""
from __future__ import annotations

import os
import re
import sys
import uuid
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("scorecard",)     # pages other than the chapters that get a Colab button, hence an install cell
LINKS = re.compile(r"^(?:LINKS|\[Open in Colab\]\([^)]*\) \| \[Source on GitHub\]\([^)]*\)) \| ", re.M)


def repository_override(env=None) -> dict:
    """{"url": ..., "branch": ...} from $BNLAB_REPOSITORY / $BNLAB_BRANCH (only the keys that are set)."""
    env = os.environ if env is None else env
    repo, branch, out = (env.get("BNLAB_REPOSITORY") or "").strip(), (env.get("BNLAB_BRANCH") or "").strip(), {}
    if repo:
        if "github.com/" in repo:
            repo = repo.split("github.com/", 1)[1]
        repo = repo.strip("/").removesuffix(".git")
        if "@" in repo:
            repo, branch = repo.split("@", 1)[0], branch or repo.split("@", 1)[1]
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
            raise ValueError(f"BNLAB_REPOSITORY={env['BNLAB_REPOSITORY']!r}: expected owner/name[@branch] or a GitHub URL")
        out["url"] = f"https://github.com/{repo}"
    if branch:
        out["branch"] = branch
    return out


def raw_config(root: Path = ROOT, env=None) -> dict:
    """_config.yml as the build uses it: the repository from the environment where set."""
    cfg = yaml.safe_load((root / "_config.yml").read_text())
    cfg["repository"].update(repository_override(env))
    return cfg


def write_config(dest: Path, root: Path = ROOT, env=None) -> None:
    """The build's config, for `jupyter-book build --config DEST .` (DEST may lie anywhere: Jupyter Book resolves
    local_extensions against the config's folder, so those paths are written absolute)."""
    cfg = raw_config(root, env)
    ext = cfg.get("sphinx", {}).get("local_extensions") or {}
    for name, path in ext.items():
        ext[name] = str((Path(root) / path).resolve())
    Path(dest).write_text("# Written by scripts/sync_chapters.py --write-config from _config.yml\n"
                          + yaml.safe_dump(cfg, sort_keys=False))


def book_config(root: Path = ROOT, env=None) -> dict:
    cfg = raw_config(root, env)
    repo = cfg["repository"]
    url = repo["url"].rstrip("/")
    return {"url": url, "slug": url.split("github.com/")[1], "branch": repo.get("branch", "main"),
            "book_path": repo.get("path_to_book", "") or "", "colab": cfg["launch_buttons"]["colab_url"].rstrip("/")}


def links_line(chapter: str, cfg: dict) -> str:
    path = f"{cfg['book_path'].strip('/') + '/' if cfg['book_path'].strip('/') else ''}book/{chapter}.ipynb"
    return (f"[Open in Colab]({cfg['colab']}/github/{cfg['slug']}/blob/{cfg['branch']}/{path}) | "
            f"[Source on GitHub]({cfg['url']}/blob/{cfg['branch']}/{path}) | ")


def install_cell(cfg: dict) -> str:
    return ("import sys\n"
            "if \"google.colab\" in sys.modules:  # on Colab only: install bnlab, keep Colab's own torch\n"
            f"    %pip install -q \"bnlab[cifar] @ git+{cfg['url']}.git@{cfg['branch']}\"")


def scale_line(name: str) -> str:
    """What a scale trains, from bnlab.config (e.g. "colab = CIFAR-10, VGG at 1/2 width, 3,000 steps (DLN 5,000)")."""
    from fractions import Fraction
    from bnlab.scales import get_scale
    from bnlab.results import DATASET_NAMES
    s = get_scale(name)
    width = "full" if s.vgg_width == 1 else f"{Fraction(s.vgg_width).limit_denominator(64)}"
    return f"{name} = {DATASET_NAMES[s.dataset]}, VGG at {width} width, {s.vgg_steps:,} steps (DLN {s.dln_steps:,})"


def parameters_cell() -> str:
    from bnlab.config import SCALES
    live = ", ".join(repr(s) for s in SCALES)
    return (
        "# MODE: \"cached\" (the results that ship with bnlab), \"live\" (recompute), or None: $BNLAB_MODE if set, else\n"
        "#   live when a GPU is present and cached without one.\n"
        f"# SCALE: one of {live}, or None: $BNLAB_SCALE if set, else\n"
        "#   cached: the largest scale that ships; live: \"colab\" with a GPU (every chapter in 15 min or less on a\n"
        "#   free Colab T4), \"cpu\" without. \"paper\" / \"paper_fmnist\" are the paper's sizes: hours on a GPU.\n"
        f"#   {scale_line('colab')};\n"
        f"#   {scale_line('cpu')}.\n"
        "#   `!python -m bnlab estimate --scale colab` prints what each chapter costs before you run it.\n"
        "# On Colab, keep the run store on Google Drive, so a recycled VM resumes from its checkpoints:\n"
        "#   from google.colab import drive; drive.mount(\"/content/drive\")\n"
        "#   import os; os.environ[\"BNLAB_HOME\"] = \"/content/drive/MyDrive/bnlab\"\n"
        "MODE = None\n"
        "SCALE = None")


def expected(nb, chapter: str, cfg: dict) -> list:
    """(cell index, wanted source) for each shared cell of a chapter."""
    out = []
    first = nb.cells[0].source
    if not LINKS.search(first):
        raise ValueError(f"{chapter}: the first cell has no links line (LINKS | ... or [Open in Colab](...) | ...)")
    out.append((0, LINKS.sub(lambda _: links_line(chapter, cfg), first, count=1)))
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            out.append((i, parameters_cell()))
        elif "%pip install" in cell.source:
            out.append((i, install_cell(cfg)))
    kinds = [src.split("\n", 1)[0] for _, src in out[1:]]
    if len(out) != 3:
        raise ValueError(f"{chapter}: expected one install cell and one parameters cell, found {kinds}")
    return out


def page_expected(nb, page: str, cfg: dict) -> list:
    """(cell index, wanted source) for a page in PAGES: its one install cell."""
    found = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "%pip install" in c.source]
    if len(found) > 1:
        raise ValueError(f"{page}: expected one install cell, found {len(found)}")
    return [(found[0], install_cell(cfg))] if found else []


def chapters(root: Path = ROOT) -> list:
    return sorted(p for p in (root / "book").glob("*.ipynb") if p.stem not in PAGES)


def pages(root: Path = ROOT) -> list:
    return [root / "book" / f"{p}.ipynb" for p in PAGES if (root / "book" / f"{p}.ipynb").exists()]


def sync(check: bool, root: Path = ROOT, env=None) -> list:
    """Rewrite (or, with ``check``, only compare) every chapter and page; returns the disagreements found."""
    cfg, problems = book_config(root, env), []
    for path in chapters(root) + pages(root):
        nb = nbformat.read(path, as_version=4)
        changed = False
        if path.stem in PAGES:
            wanted = page_expected(nb, path.stem, cfg)
            if not wanted:             # no install cell yet: one after the title cell, as in the chapters
                problems.append(f"{path.relative_to(root)}: no install cell")
                cell = nbformat.v4.new_code_cell(install_cell(cfg), metadata={"tags": ["remove-output"]})
                nb.cells.insert(1, cell)
                changed = True
        else:
            wanted = expected(nb, path.stem, cfg)
        for i, want in wanted:
            if nb.cells[i].source != want:
                problems.append(f"{path.relative_to(root)}: cell {i} differs from what _config.yml and bnlab give")
                nb.cells[i].source, changed = want, True
        for cell in nb.cells:
            if "id" not in cell:
                cell["id"], changed = uuid.uuid4().hex[:8], True
        if changed and not check:
            nbformat.write(nb, path)
    return problems + sync_toc(check, root)


def sync_toc(check: bool, root: Path = ROOT) -> list:
    """The wheel's copy of _toc.yml (bnlab/chapters/_toc.yml: chapter numbers and order where no checkout is)."""
    src, dest = root / "_toc.yml", root / "bnlab" / "chapters" / "_toc.yml"
    if not src.exists() or (dest.exists() and dest.read_text() == src.read_text()):
        return []                              # no toc here (a partial copy), or the copy is current
    if not check:
        dest.write_text(src.read_text())
    return [f"{dest.relative_to(root)}: differs from _toc.yml"]


if __name__ == "__main__":
    if "--write-config" in sys.argv[1:]:
        write_config(Path(sys.argv[sys.argv.index("--write-config") + 1]))
        sys.exit(0)
    check = "--check" in sys.argv[1:]
    found = sync(check)
    print("\n".join(found) if found else "every chapter agrees with _config.yml")
    sys.exit(1 if (found and check) else 0)
