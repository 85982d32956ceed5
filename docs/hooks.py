"""MkDocs hooks: pages whose text lives elsewhere in the repository, filled in at build time.

* ``configuration.md``: the marker line below is replaced by the reference of every setting,
  generated from the configuration schema, so the page cannot fall behind the code.
* ``leaderboards/index.md``: ``leaderboards/README.md`` (the files, their commands, the CSV
  schema), which stays beside the CSVs where GitHub shows it; its links into ``docs/`` are
  rewritten to the site's.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- generated: bench.config.reference_markdown() -->"


def configuration_reference() -> str:
    """The settings as markdown, from the configuration schema (imported here, lazily, so that MkDocs
    starts without torch's import time)."""
    from bench.config import reference_markdown

    return reference_markdown()


def on_files(files, config):
    readme = (ROOT / "leaderboards" / "README.md").read_text()
    files.append(File.generated(config, "leaderboards/index.md", content=readme.replace("](../docs/", "](../")))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, configuration_reference())
    return markdown
