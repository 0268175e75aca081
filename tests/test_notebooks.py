"""The chapters follow the book's rules: thin (no def/class), a Colab link and Colab-only install cell that use the
repository url of _config.yml, a parameters cell, outputs committed, and every chapter listed in _toc.yml."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted(p for p in (ROOT / "book").glob("*.ipynb") if p.stem != "scorecard")
URL = re.search(r"url:\s*(\S+)", (ROOT / "_config.yml").read_text()).group(1).rstrip("/")


def cells(path):
    return json.loads(path.read_text())["cells"]


def source(cell):
    return "".join(cell["source"])


def test_every_chapter_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    assert CHAPTERS
    for path in CHAPTERS:
        assert f"file: book/{path.stem}" in toc


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_is_thin_and_opens_on_colab(path):
    cs = cells(path)
    code = [source(c) for c in cs if c["cell_type"] == "code"]
    assert not any(re.search(r"^\s*(def|class) ", src, re.M) for src in code), "chapters define no functions"
    assert all(len([ln for ln in src.splitlines() if ln.strip()]) <= 6 for src in code[3:]), "cells stay short"
    first_md = source(cs[0])
    assert f"https://colab.research.google.com/github/{URL.split('github.com/')[1]}/blob/main/book/{path.stem}.ipynb" \
        in first_md
    assert '"google.colab" in sys.modules' in code[0] and f"git+{URL}.git" in code[0]
    params = [c for c in cs if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1 and "MODE = None" in source(params[0])
    assert "{cite}" in "".join(source(c) for c in cs if c["cell_type"] == "markdown")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_committed_outputs_come_from_cached_mode(path):
    outputs = [o for c in cells(path) if c["cell_type"] == "code" for o in c.get("outputs", [])]
    texts = "".join("".join(o.get("text", "")) for o in outputs)
    assert "Cached result:" in texts and "Live result" not in texts
    assert not [o for o in outputs if o.get("name") == "stderr"], "no warnings or progress bars in outputs"
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "every chapter shows a figure"


def _sync_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location("sync_chapters", ROOT / "scripts" / "sync_chapters.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_links_install_url_and_parameters_cell_agree_with_config():
    """scripts/sync_chapters.py writes them from _config.yml and bnlab.config; nothing is typed by hand."""
    assert _sync_module().sync(check=True) == []


def test_sync_check_catches_a_hand_edited_url(tmp_path):
    import shutil
    sync = _sync_module()
    (tmp_path / "book").mkdir()
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    shutil.copy(CHAPTERS[0], tmp_path / "book" / CHAPTERS[0].name)
    assert sync.sync(check=True, root=tmp_path) == []
    nb = tmp_path / "book" / CHAPTERS[0].name
    nb.write_text(nb.read_text().replace("bnlab-book/bnlab.git", "someone-else/bnlab.git"))
    assert len(sync.sync(check=True, root=tmp_path)) == 1
    config = tmp_path / "_config.yml"
    config.write_text(config.read_text().replace("bnlab-book/bnlab", "moved/bnlab"))
    assert len(sync.sync(check=True, root=tmp_path)) == 2        # the links and the %pip URL
    sync.sync(check=False, root=tmp_path)
    assert sync.sync(check=True, root=tmp_path) == [] and "git+https://github.com/moved/bnlab.git" in nb.read_text()


def test_parameters_cell_lists_every_scale():
    from bnlab.config import SCALES
    for path in CHAPTERS:
        params = [source(c) for c in cells(path) if "parameters" in c.get("metadata", {}).get("tags", [])][0]
        assert all(repr(s) in params for s in SCALES) and "BNLAB_HOME" in params


def test_chapter_map_of_the_estimate_matches_the_chapters():
    """`python -m bnlab estimate` counts per chapter what each chapter module's `computes` says it runs."""
    from bnlab.chapters import computes
    REGISTERED = computes()
    found = {}
    for path in CHAPTERS:
        code = "\n".join(source(c) for c in cells(path) if c["cell_type"] == "code")
        found[path.stem] = set(re.findall(r'bnlab\.run\("(\w+)"', code))
    assert {k: set(v) for k, v in REGISTERED.items()} == found
