"""Write the cost tables that README.md and book/reproducing.md show from what `python -m bnlab estimate` prints, so
that adding an experiment or a chapter never leaves the docs behind. `--check` changes nothing and exits 1 where a
document disagrees (tests/test_estimate.py checks the same).

    python scripts/sync_docs.py            # rewrite the estimate blocks in place
    python scripts/sync_docs.py --check    # list the documents that disagree, exit 1 if any
"""
from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("README.md", "book/reproducing.md")
BLOCK = re.compile(r"(```text\n\$ python -m bnlab (estimate[^\n]*)\n)(.*?)(```)", re.S)
TOTAL = re.compile(r"`(total: [\d.]+ PFLOP, [\d.]+ min at ([\d.]+) TFLOP/s)[^`]*`")


def estimate_output(command: str) -> str:
    from bnlab.__main__ import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(command.split())
    return out.getvalue()


def synced(text: str) -> str:
    text = BLOCK.sub(lambda m: m.group(1) + estimate_output(m.group(2)) + m.group(4), text)

    def total(m):
        last = estimate_output(f"estimate --scale paper --tflops {m.group(2)}").splitlines()[-1]
        return "`" + last.split(" (")[0].removesuffix(",") + "`"
    return TOTAL.sub(total, text)


def sync(check: bool, root: Path = ROOT) -> list:
    stale = []
    for doc in DOCS:
        path = root / doc
        text = path.read_text()
        new = synced(text)
        if new != text:
            stale.append(doc)
            if not check:
                path.write_text(new)
    return stale


if __name__ == "__main__":
    check = "--check" in sys.argv
    stale = sync(check)
    for doc in stale:
        print(f"{doc}: the estimate output it shows is {'stale' if check else 'rewritten'}")
    sys.exit(1 if check and stale else 0)
