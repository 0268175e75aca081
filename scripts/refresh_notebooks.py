"""Re-execute the scorecard and the chapters in cached mode and save their outputs in place (after `bnlab reproduce
--out bnlab/cached`). The committed outputs are what the book shows and what `pytest --nbval` checks."""
import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def refresh(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    os.environ.update(BNLAB_MODE="cached", BNLAB_PROGRESS="0", MPLBACKEND="module://matplotlib_inline.backend_inline")
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in nb.cells:                      # execution counts and timings would make every refresh a diff
        cell.get("metadata", {}).pop("execution", None)
    nbformat.write(nb, path)
    print(f"refreshed {path.relative_to(ROOT)}")


if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]] or [ROOT / "book" / "scorecard.ipynb"] + sorted(p for p in (ROOT / "book").glob("*.ipynb") if p.stem != "scorecard")
    for p in paths:
        refresh(p.resolve())
