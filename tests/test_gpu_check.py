"""``scripts/gpu_check.sh --dry-run``: the GPU check's every section runs on the CPU at smoke sizes, so the script a
GPU session runs once never rots. Its own budget (50 s by default) is raised here to 150 s: the test checks what the
sections do, not how fast a shared CI machine runs them (under load the last section used to run out of budget)."""
import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("agreement", "resume", "resume_deterministic", "memory", "estimate", "bench")


def test_gpu_check_dry_run(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "OMP_NUM_THREADS": "1", "GPU_CHECK_BUDGET": "150"}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry-run"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = (out / "summary.txt").read_text().splitlines()
    assert lines[0].startswith("gpu_check dry-run"), lines[0]
    by_section = {line.split()[1]: line.split()[0] for line in lines[1:-1]}
    assert set(by_section) == set(SECTIONS), lines
    # every section ran (memory has no CUDA allocator to read on a CPU: SKIP with the process's RSS)
    assert all(by_section[s] == "PASS" for s in SECTIONS if s != "memory"), lines
    assert "max RSS" in next(line for line in lines if " memory " in line)
    assert lines[-1].startswith("total: 5 pass, 0 fail, 1 skip"), lines[-1]
    for s in SECTIONS:
        assert (out / f"{s}.json").exists(), s
    assert (out / "summary.json").exists() and (out / "bench.json").exists()
    agreement = json.loads((out / "agreement.json").read_text())
    for case, detail in agreement["detail"].items():       # every probe kind was compared, in every case
        assert {"act", "ics", "land", "sharp"} <= set(detail["array_groups"]), case
