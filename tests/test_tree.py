"""Guards on the shape of the tree, run with the unit tests: no source file grows past
600 lines, every link in the Markdown resolves inside the repository, and the pre-commit
hooks are the lint CI runs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 600
SOURCE_SUFFIXES = (".py", ".sh", ".html", ".css", ".js")

# Files over MAX_LINES today, each with the length it may not pass. The list may only
# shrink: split a file below MAX_LINES, then delete its line here (the test says when).
LONG_FILES_ALLOWED = {
    "libs/events/src/revops/events/consumer.py": 676,
    "services/router/src/revops/router/leads.py": 741,
    "bench/faults/check.py": 840,
    "services/ingest/src/revops/ingest/domain/salesforce.py": 658,
}
# The allow-list as it was when the rule came in: it may never gain a file.
LONG_FILES_AT_START = frozenset(
    {
        "libs/events/src/revops/events/consumer.py",
        "services/router/src/revops/router/api.py",
        "services/router/src/revops/router/leads.py",
        "services/ingest/src/revops/ingest/api.py",
        "bench/faults/check.py",
        "services/ingest/src/revops/ingest/backfill/fake_crm.py",
        "services/ingest/src/revops/ingest/domain/salesforce.py",
    }
)

# Links to pages outside the repository that the docs may carry: the standards a file
# declares it follows. Everything else a document links to must be in the repository.
EXTERNAL_LINKS_ALLOWED = {
    ("CHANGELOG.md", "https://semver.org/"),
}

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
INLINE_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]\n]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def tracked(*patterns: str) -> list[str]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--", *patterns],
            cwd=ROOT,
            capture_output=True,
            check=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"these guards read the tracked files through git, which failed: {exc}")
    return [p for p in out.split("\0") if p and (ROOT / p).is_file()]


def source_files() -> list[str]:
    return [
        p
        for p in tracked(*(f"*{suffix}" for suffix in SOURCE_SUFFIXES))
        if "/migrations/versions/" not in p
    ]


def line_count(path: str) -> int:
    return len((ROOT / path).read_text(encoding="utf-8").splitlines())


def links_in(markdown: str) -> list[str]:
    """The targets of the inline and reference links (and images) outside code."""
    text = CODE_SPAN.sub("", FENCE.sub("", markdown))
    return INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)


def link_problem(document: str, target: str) -> str | None:
    """Why a link in a tracked Markdown file is not allowed, or None when it is fine."""
    if target.startswith("#"):
        return None
    if SCHEME.match(target):
        if (document, target) in EXTERNAL_LINKS_ALLOWED:
            return None
        return "links outside the repository"
    path = unquote(target.split("#", 1)[0].split("?", 1)[0])
    resolved = ((ROOT / document).parent / path).resolve()
    if not resolved.is_relative_to(ROOT):
        return "points outside the repository"
    if not resolved.exists():
        return "names a file that does not exist"
    return None


def test_no_source_file_passes_600_lines_unless_listed():
    too_long = {
        path: n
        for path in source_files()
        if (n := line_count(path)) > MAX_LINES and path not in LONG_FILES_ALLOWED
    }
    assert not too_long, f"over {MAX_LINES} lines (split them): {too_long}"


def test_a_listed_long_file_never_grows():
    grown = {
        path: (line_count(path), allowed)
        for path, allowed in LONG_FILES_ALLOWED.items()
        if (ROOT / path).is_file() and line_count(path) > allowed
    }
    assert not grown, f"grew past their listed length (lines now, allowed): {grown}"


def test_the_long_file_list_only_shrinks():
    added = set(LONG_FILES_ALLOWED) - LONG_FILES_AT_START
    assert not added, f"the list of long files may only shrink, yet it gained {sorted(added)}"
    fixed = [
        path
        for path in LONG_FILES_ALLOWED
        if not (ROOT / path).is_file() or line_count(path) <= MAX_LINES
    ]
    assert not fixed, f"no longer over {MAX_LINES} lines (or gone): remove from the list: {fixed}"


def test_every_markdown_link_resolves_inside_the_repository():
    documents = tracked("*.md")
    assert "README.md" in documents
    problems = [
        f"{document}: ({target}) {problem}"
        for document in documents
        for target in links_in((ROOT / document).read_text(encoding="utf-8"))
        if (problem := link_problem(document, target))
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("docs/RULES.md", None),
        ("docs/RULES.md#routing", None),
        ("#a-heading", None),
        ("docs/NOWHERE.md", "names a file that does not exist"),
        ("../../shared/RULES.md", "points outside the repository"),
        ("https://example.com/", "links outside the repository"),
        ("file:///etc/passwd", "links outside the repository"),
    ],
)
def test_the_link_check_tells_good_links_from_bad(target: str, problem: str | None):
    assert link_problem("README.md", target) == problem


def test_links_are_found_in_text_but_not_in_code():
    markdown = (
        "See [the rules](docs/RULES.md) and ![a chart](docs/a.png).\n"
        "[ref]: docs/ARCHITECTURE.md\n"
        "`[not](a-link.md)`\n"
        "```\n[nor](this.md)\n```\n"
    )
    assert links_in(markdown) == ["docs/RULES.md", "docs/a.png", "docs/ARCHITECTURE.md"]


def test_pre_commit_runs_ruff_ruff_format_and_mypy_from_the_locked_environment():
    import yaml

    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    assert [repo["repo"] for repo in config["repos"]] == ["local"], "hooks download nothing"
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    assert set(hooks) == {"ruff", "ruff-format", "mypy"}
    for hook in hooks.values():
        assert hook["language"] == "system"
        assert hook["entry"].startswith("uv run --frozen "), hook


def test_a_new_benchmark_run_is_not_committed_by_accident():
    probe = "bench/results/e2e-21001231-2359/results.json"
    ignored = subprocess.run(["git", "check-ignore", "-q", probe], cwd=ROOT, check=False)
    assert ignored.returncode == 0, f"{probe} should be ignored (.gitignore: bench/results/*)"


def test_every_kept_benchmark_plot_is_one_the_results_cite():
    results = (ROOT / "docs" / "RESULTS.md").read_text(encoding="utf-8")
    uncited = [
        path
        for path in tracked("bench/results/*.png")
        if str(Path(path).parent.relative_to("bench/results")) not in results
    ]
    assert not uncited, f"plots docs/RESULTS.md does not cite (git rm them): {uncited}"
