"""Every committed leaderboard was written by the current version, or the leaderboards' README says why it is kept.

A version changes what a run computes (defaults, intervals, costs), so a committed file of an older
version is a claim the code no longer makes, unless its table in ``leaderboards/README.md``
("Files kept from older versions") names it with its version and a reason.
"""

import re
from pathlib import Path

import pytest

import bench
from bench.leaderboard import read_csv

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted(path.name for path in (ROOT / "leaderboards").glob("*.csv.gz"))
HEADING = "## Files kept from older versions"


def kept_older() -> dict[str, tuple[str, str]]:
    """The README's table of files kept from older versions: file -> (version, reason)."""
    text = (ROOT / "leaderboards" / "README.md").read_text()
    assert HEADING in text, f"leaderboards/README.md has no section {HEADING!r}"
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| ([0-9.]+) \| (.+?) \|$", section, flags=re.MULTILINE)
    return {name: (version, reason.strip()) for name, version, reason in rows}


def test_the_readme_table_is_read():
    kept = kept_older()
    assert all(name in FILES for name in kept), sorted(set(kept) - set(FILES))


@pytest.mark.parametrize("name", FILES)
def test_a_committed_file_is_of_the_current_version_or_says_why_not(name):
    versions = set(read_csv(ROOT / "leaderboards" / name)["bench_version"].astype(str))
    assert len(versions) == 1, f"{name} mixes versions {sorted(versions)}"
    version = versions.pop()
    kept = kept_older()
    if version == bench.__version__:
        assert name not in kept, f"{name} is of version {version}, the current one: drop it from the README's table"
        return
    assert name in kept, (f"{name} was written by bench {version}, not {bench.__version__}: regenerate it "
                          f"(leaderboards/README.md has its command) or name it, with why, under {HEADING!r}")
    recorded, reason = kept[name]
    assert recorded == version, f"the README says {name} is of {recorded}; it is of {version}"
    assert len(reason.split()) >= 5, f"give a reason for keeping {name}, not {reason!r}"
