"""A clone is enough: no file of the project refers to a path outside the checkout.

A user's clone has nothing beside it, so a test, benchmark or doc that reaches
for a sibling folder (the captured samples once lived in one) fails only on
their machine. The fixtures live in tests/data/.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ["racedash", "tests", "benchmarks", "scripts", ".ci", "docs", "templates", "static/js",
           "README.md", "setup.py", "tox.ini"]
TEXT_SUFFIXES = {".py", ".md", ".sh", ".ini", ".cfg", ".toml", ".html", ".js", ".css", ".txt", ""}

# Built from pieces so that neither this file nor a grep for these paths matches it.
SIBLING = "sha" + "red"
OUTSIDE = re.compile("|".join([
    re.escape("../" + SIBLING),
    re.escape(SIBLING + "/data"),
    re.escape(SIBLING + "/CONTRACT"),
    r"parents\[" + r"[2-9]\]",
]))


def project_files():
    for entry in SCANNED:
        path = ROOT / entry
        if path.is_file():
            yield path
        elif path.is_dir():
            for file in path.rglob("*"):
                if file.is_file() and file.suffix in TEXT_SUFFIXES and "__pycache__" not in file.parts:
                    yield file


def test_no_file_refers_outside_the_checkout():
    offenders = []
    for file in project_files():
        for number, line in enumerate(file.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{file.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "paths outside the checkout:\n" + "\n".join(offenders)


def test_the_captured_samples_are_part_of_the_project():
    data = ROOT / "tests" / "data"
    for name in ("car_setup_overview.json", "telemetry_raw_frame.json", "telemetry_update_samples.jsonl"):
        assert (data / name).is_file(), name
        assert name in (data / "README.md").read_text()


def test_the_scan_catches_a_sibling_path(tmp_path):
    # The check itself must be able to fail.
    assert OUTSIDE.search('open("..' + '/sha' + 'red/x.json")')
    assert OUTSIDE.search("Path(__file__).parents[" + "2] / 'x'")
    assert not OUTSIDE.search("Path(__file__).parents[1] / 'tests' / 'data'")
