"""The README starts with the two commands a newcomer runs, and CI runs the test one."""

import re

from tests.systems import REPO


def first_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text)[:2]


def test_readme_starts_with_run_and_test_commands():
    run, test = first_commands()
    assert run.endswith("grandmodel run")
    assert "pytest" in test
    readme = (REPO / "README.md").read_text()
    assert readme.index(run) < readme.index("---")


def test_ci_runs_the_readme_test_command_verbatim():
    _, test = first_commands()
    ci_lines = (REPO / ".ci" / "run").read_text().splitlines()
    assert test in ci_lines
