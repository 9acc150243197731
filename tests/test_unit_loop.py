"""What keeps `make unit` fast and honest: the root conftest refuses a program started by a
test not marked `processes`, leaves whole `infra` and `processes` modules unimported, and
property tests scale their own example counts with Hypothesis's profile."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import settings

from revops.events.testing import examples

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def root_conftest(request: pytest.FixtureRequest) -> ModuleType:
    plugin = request.config.pluginmanager.get_plugin(str(ROOT / "conftest.py"))
    assert isinstance(plugin, ModuleType)
    return plugin


def test_a_program_other_than_git_fails_the_test_and_names_the_mark(
    root_conftest: ModuleType,
) -> None:
    with pytest.raises(pytest.fail.Exception, match=r"starts `docker`.*pytest\.mark\.processes"):
        root_conftest._QuickProgramsOnly(["/usr/bin/docker", "compose", "version"])
    with pytest.raises(pytest.fail.Exception, match="starts `helm`"):
        root_conftest._QuickProgramsOnly("helm template .", shell=True)


def test_git_may_run(root_conftest: ModuleType) -> None:
    with root_conftest._QuickProgramsOnly(
        ["git", "rev-parse", "--show-toplevel"], cwd=ROOT, stdout=subprocess.PIPE
    ) as git:
        out, _ = git.communicate()
    assert git.returncode == 0
    assert Path(out.decode().strip()).resolve() == ROOT


@pytest.mark.parametrize(
    "source, marks",
    [
        ("import pytest\npytestmark = pytest.mark.infra\n", {"infra"}),
        (
            "import pytest\npytestmark = [pytest.mark.timeout(60), pytest.mark.processes]\n",
            {"timeout", "processes"},
        ),
        ("import pytest\n\n@pytest.mark.processes\ndef test_one():\n    pass\n", set()),
        ("x = 1\n", set()),
    ],
)
def test_a_module_s_marks_are_read_without_importing_it(
    root_conftest: ModuleType, tmp_path: Path, source: str, marks: set[str]
) -> None:
    module = tmp_path / "test_module.py"
    module.write_text(source + "raise SystemExit('imported')\n")
    assert root_conftest._module_marks(module) == marks


def test_the_fast_profile_runs_a_tenth_of_each_count_and_never_under_ten() -> None:
    current = settings.get_current_profile_name()
    try:
        settings.load_profile("fast")
        assert (examples(300), examples(150), examples(50)) == (30, 15, 10)
        settings.load_profile("default")
        assert (examples(300), examples(150), examples(50)) == (300, 150, 50)
    finally:
        settings.load_profile(current)
