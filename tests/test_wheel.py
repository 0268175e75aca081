"""The package as readers get it: the wheel that `pip install` builds from a clean export of the repository,
installed non-editable into a folder of its own and used from a directory outside the checkout (as on Colab).
The editable install that the other tests use would hide a subpackage or a cached file missing from the wheel."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from conftest import needs_fashion

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "02_bn_vs_standard.ipynb"     # any chapter: every one imports bnlab, bnlab.plots, bnlab.tables and bnlab.claims


def _export(dest: Path) -> Path:
    """The files a fresh clone has (tracked, plus untracked ones git does not ignore), nothing built."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to export")
    src = _export(tmp_path_factory.mktemp("export"))
    out = tmp_path_factory.mktemp("wheelhouse")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-w", str(out), str(src)], check=True,
                   env={**os.environ, "PIP_CONSTRAINT": ""})
    (whl,) = out.glob("bnlab-*.whl")
    return whl


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The wheel installed (no dependencies: those of this environment serve) into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                    "--target", str(target), str(wheel)], check=True, env={**os.environ, "PIP_CONSTRAINT": ""})
    return target


def _outside(tmp_path: Path, target: Path) -> dict:
    """Environment for a process that imports bnlab from ``target`` only, in a folder outside the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BNLAB_")}
    env.update(PYTHONPATH=str(target), BNLAB_HOME=str(tmp_path / "home"), BNLAB_PROGRESS="0",
               BNLAB_DATA=os.environ.get("BNLAB_DATA", str(tmp_path / "data")), BNLAB_DEVICE="cpu",
               MPLBACKEND="Agg")
    return env


def test_wheel_holds_every_subpackage_module_and_cached_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "bnlab").rglob("*.py")}
    packages = {m for m in modules if m.endswith("/__init__.py")}
    assert {"bnlab/plots/__init__.py", "bnlab/measure/__init__.py"} <= packages
    assert modules - names == set(), "modules missing from the wheel"
    manifest = json.loads((ROOT / "bnlab" / "cached" / "MANIFEST.json").read_text())
    cached = {f"bnlab/cached/{rel}" for rel in manifest} | {"bnlab/cached/MANIFEST.json"}
    assert cached - names == set(), "cached results missing from the wheel"


def test_installed_package_is_the_one_imported_outside_the_checkout(installed, tmp_path):
    code = "import bnlab, bnlab.plots, bnlab.tables, bnlab.claims; print(bnlab.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_outside(tmp_path, installed),
                         capture_output=True, text=True, check=True).stdout
    assert Path(out.strip()).resolve().is_relative_to(installed.resolve())
    verify = subprocess.run([sys.executable, "-m", "bnlab", "verify"], cwd=tmp_path,
                            env=_outside(tmp_path, installed), capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_installed_chapter_runs_in_cached_mode_outside_the_checkout(installed, tmp_path):
    nb_path = tmp_path / CHAPTER
    shutil.copy(ROOT / "book" / CHAPTER, nb_path)
    code = textwrap.dedent(f"""
        import nbformat
        from nbclient import NotebookClient
        nb = nbformat.read({str(nb_path)!r}, as_version=4)
        nb.cells.insert(0, nbformat.v4.new_code_cell("import bnlab; assert bnlab.__file__.startswith({str(installed)!r}), bnlab.__file__"))
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={{"metadata": {{"path": {str(tmp_path)!r}}}}}).execute()
        text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
        assert "Cached result: bn_vs_standard" in text, text[:2000]
    """)
    env = _outside(tmp_path, installed)
    env.update(BNLAB_MODE="cached")
    env.pop("MPLBACKEND")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@needs_fashion
def test_installed_live_smoke_run_outside_the_checkout(installed, tmp_path):
    code = textwrap.dedent(f"""
        import bnlab
        assert bnlab.__file__.startswith({str(installed)!r}), bnlab.__file__
        res = bnlab.run("ics_dln", mode="live", scale="smoke")
        assert res.source == "live" and len(res.runs) == 2 and all(r.status == "ok" for r in res.runs)
        again = bnlab.run("ics_dln", mode="live", scale="smoke")
        assert again.reused == 2
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_outside(tmp_path, installed),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Plan: ics_dln at smoke scale: 2 of 2 run(s) to compute" in proc.stdout
    assert "Live result, reused from the run store" in proc.stdout
