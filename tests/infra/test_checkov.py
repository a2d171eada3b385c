"""checkov's Bicep policies over infra/: no parse error, no failed check, every skip justified inline.

checkov exits 0 when a file does not parse, so its JSON report is read instead of its exit code. It
runs from its own venv (.venv/infra, `make test` builds it): its pins clash with pytest's. Its own
pycep-parser (0.5.1) is stricter than the tests' 0.7.1, e.g. at most four comment lines in a row
inside an object.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from tests.infra.bicep import INFRA, ROOT, bicep_files, parse

CHECKOV = Path(os.environ.get("INFRA_VENV", ROOT / ".venv" / "infra")) / "bin" / "checkov"
SKIP = re.compile(r"//\s*checkov:skip=(CKV2?_[A-Z]+_\d+)(?::\s*(.*))?$")


@functools.cache
def report() -> dict[str, Any]:
    assert CHECKOV.is_file(), (
        f"checkov is not installed at {CHECKOV}: `make test` installs it (Makefile target .venv/infra/.installed, "
        "from infra/requirements-checkov.txt)"
    )
    result = subprocess.run(
        [
            str(CHECKOV),
            "--directory",
            str(INFRA),
            "--framework",
            "bicep",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]
    loaded = json.loads(result.stdout)
    reports = loaded if isinstance(loaded, list) else [loaded]
    (bicep,) = [r for r in reports if r.get("check_type") == "bicep"]
    return dict(bicep)


def test_checkov_parses_every_file() -> None:
    summary = report()["summary"]
    errors = report()["results"].get("parsing_errors", [])
    assert summary["parsing_errors"] == 0, f"checkov (pycep 0.5.1) cannot parse: {errors}"
    declared = sum(len(parse(path).get("resources", {})) for path in bicep_files())
    assert summary["resource_count"] >= declared, "checkov saw fewer resources than the files declare"


def test_checkov_finds_nothing_failing() -> None:
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for c in report()["results"]["failed_checks"]
    ]
    summary = report()["summary"]
    assert failed == [], f"{summary}\n" + "\n".join(failed)
    assert summary["passed"] > 0


def test_every_skip_is_justified_and_used() -> None:
    written: Counter[tuple[str, str]] = Counter()
    for path in bicep_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if "checkov:skip" not in line:
                continue
            match = SKIP.search(line.strip())
            assert match, f"{path.name}:{number}: malformed skip {line.strip()!r}"
            reason = match.group(2) or ""
            assert len(reason) >= 20, f"{path.name}:{number}: {match.group(1)} needs a reason"
            written[("/" + path.relative_to(INFRA).as_posix(), match.group(1))] += 1
    skipped = Counter((c["file_path"], c["check_id"]) for c in report()["results"]["skipped_checks"])
    assert skipped == written, (
        f"skips that checkov did not apply (stale, or outside their resource block): {written - skipped}; "
        f"skipped without a comment: {skipped - written}"
    )
