"""Validate a .ts the way a host would, in a fresh interpreter that never imports flowshot."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from flowshot.errors import FlowshotError

_PROBE = Path(__file__).with_name("ts_probe.py")


def check_ts(path: str | Path, timeout: float = 300.0) -> dict[str, Any]:
    """Load and exercise ``path`` in ``python -I`` (no project on the path); return its report.

    Returns:
        dict with "methods" ({name: {"params": [in_ch, in_ratio, out_ch, out_ratio], ...}}),
        "attributes" ({name: {"types": [...], "value": ...}}), "info", "macro_labels".
    Raises:
        FlowshotError: the file is missing, does not load, or breaks nn~'s expectations.
    """
    path = Path(path)
    if not path.is_file():
        raise FlowshotError(f"{path} does not exist: pass a .ts written by `flowshot export ts`")
    # TorchScript files are zip archives: a truncated or foreign file is refused here at
    # once, without starting an interpreter (and without risking a loader crash).
    if not zipfile.is_zipfile(path):
        raise FlowshotError(f"{path} is not a TorchScript file (not a zip archive: truncated or foreign); re-export it with `flowshot export ts`")
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
    except (zipfile.BadZipFile, OSError) as err:
        raise FlowshotError(f"{path} is a damaged TorchScript file ({err}); re-export it with `flowshot export ts`") from None
    if broken is not None:
        raise FlowshotError(f"{path} is a damaged TorchScript file (member {broken} fails its checksum); re-export it with `flowshot export ts`")
    # -I: no PYTHONPATH, no user site, no script directory; the probe's source goes in by -c
    # so nothing of flowshot is importable by accident through sys.path[0].
    cmd = [sys.executable, "-I", "-c", _PROBE.read_text(), str(path.resolve())]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FlowshotError(f"{path}: the self-test did not finish in {timeout:.0f} s; the model is too slow for live use") from None
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:160]
        raise FlowshotError(f"{path} crashed the loader (exit {proc.returncode}: {tail}); re-export it with `flowshot export ts`")
    report = json.loads(lines[-1])
    if proc.returncode != 0 or not report.get("ok"):
        raise FlowshotError(f"{path} is not a usable flowshot instrument: {report.get('error', 'unknown')}; re-export it with `flowshot export ts`")
    return report
