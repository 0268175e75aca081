"""A book published somewhere else points there: scripts/build_book.sh with $BNLAB_REPOSITORY set builds from
`sync_chapters.py --write-config` and a synced copy of the notebooks. Building the whole book takes a minute, so
this runs the same publishing step on a temporary copy and checks every link and install cell it would build."""
import importlib.util
import re
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = "bnlab-book/bnlab"
spec = importlib.util.spec_from_file_location("sync_chapters", ROOT / "scripts" / "sync_chapters.py")
sync_chapters = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sync_chapters)


@pytest.fixture
def copy(tmp_path):
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "book").mkdir()
    for nb in (ROOT / "book").glob("*.ipynb"):
        shutil.copy(nb, tmp_path / "book" / nb.name)
    return tmp_path


def notebooks(root):
    return sorted((root / "book").glob("*.ipynb"))


def texts(root):
    return {p.name: p.read_text() for p in notebooks(root)}


@pytest.mark.parametrize("address", ["someone/else@dev", "https://github.com/someone/else"])
def test_a_build_published_elsewhere_points_there(copy, address):
    env = {"BNLAB_REPOSITORY": address, "BNLAB_BRANCH": "dev"}
    sync_chapters.sync(check=False, root=copy, env=env)
    sync_chapters.write_config(copy / "published.yml", root=copy, env=env)

    cfg = yaml.safe_load((copy / "published.yml").read_text())
    for name, path in cfg["sphinx"]["local_extensions"].items():   # absolute, as the config may lie anywhere
        assert Path(path) == (copy / yaml.safe_load((ROOT / "_config.yml").read_text())[
            "sphinx"]["local_extensions"][name]).resolve()
        cfg["sphinx"]["local_extensions"][name] = "book/_ext"
    assert cfg["repository"]["url"] == "https://github.com/someone/else" and cfg["repository"]["branch"] == "dev"
    assert cfg["html"]["use_repository_button"] and cfg["launch_buttons"]["colab_url"]
    assert {k: v for k, v in cfg.items() if k != "repository"} == {
        k: v for k, v in yaml.safe_load((ROOT / "_config.yml").read_text()).items() if k != "repository"}

    for path in notebooks(copy):
        nb, name = nbformat.read(path, as_version=4), path.name
        assert PLACEHOLDER not in path.read_text(), name
        installs = [c.source for c in nb.cells if c.cell_type == "code" and "%pip install" in c.source]
        # every page gets a Colab button (a notebook, launch_buttons.colab_url), so every page has an install cell
        assert len(installs) == 1, name
        assert '"bnlab[cifar] @ git+https://github.com/someone/else.git@dev"' in installs[0], name
        install = next(c for c in nb.cells if "%pip install" in c.source)
        assert "remove-output" in install.metadata.get("tags", []), name
        links = re.findall(r"\]\((https?://[^)]*)\)", nb.cells[0].source)
        if name[0].isdigit():
            assert links == [
                f"https://colab.research.google.com/github/someone/else/blob/dev/book/{name}",
                f"https://github.com/someone/else/blob/dev/book/{name}"], name
        for link in links:
            if "github" in link:
                assert "/someone/else/blob/dev/" in link, (name, link)
    assert sync_chapters.sync(check=True, root=copy, env=env) == []


def test_without_the_variable_nothing_changes(copy):
    before = texts(copy)
    assert sync_chapters.sync(check=False, root=copy, env={}) == []
    assert texts(copy) == before
    sync_chapters.write_config(copy / "published.yml", root=copy, env={})
    cfg = yaml.safe_load((copy / "published.yml").read_text())
    assert cfg["sphinx"]["local_extensions"] == {name: str(copy / "book" / "_ext") for name in ("local_mathjax",
                                                                                             "local_plotly")}
    cfg["sphinx"]["local_extensions"] = {"local_mathjax": "book/_ext", "local_plotly": "book/_ext"}
    assert cfg == yaml.safe_load((ROOT / "_config.yml").read_text())


def test_published_then_unpublished_returns_to_the_committed_notebooks(copy):
    before = texts(copy)
    sync_chapters.sync(check=False, root=copy, env={"BNLAB_REPOSITORY": "someone/else@dev"})
    assert texts(copy) != before
    sync_chapters.sync(check=False, root=copy, env={})
    assert texts(copy) == before


def test_a_page_missing_its_install_cell_gets_one(copy):
    path = copy / "book" / "scorecard.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if "%pip install" not in c.source]
    nbformat.write(nb, path)
    assert sync_chapters.sync(check=True, root=copy, env={}) == ["book/scorecard.ipynb: no install cell"]
    sync_chapters.sync(check=False, root=copy, env={})
    cell = nbformat.read(path, as_version=4).cells[1]
    assert cell.source == sync_chapters.install_cell(sync_chapters.book_config(copy, env={}))
    assert cell.metadata["tags"] == ["remove-output"]


def test_bad_addresses_are_refused():
    with pytest.raises(ValueError):
        sync_chapters.repository_override({"BNLAB_REPOSITORY": "not an address"})
    assert sync_chapters.repository_override({"BNLAB_REPOSITORY": "a/b.git"}) == {"url": "https://github.com/a/b"}
