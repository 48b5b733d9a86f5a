"""Reading a test run: pytest's JUnit XML report first, its console summary as the fallback.

The report is written by the code under test, so these tests also plant what that code
could: a malformed file, a DTD, a symbolic link or a FIFO where the report should be.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from smallhold.apps.code.sandbox import Limits, Sandbox, SandboxResult
from smallhold.apps.code.testing import (
    JUNIT_LIMIT,
    JUNIT_PREFIX,
    default_command,
    parse_junit,
    read_report,
    run_tests,
    take_junit,
    with_junit,
)
from smallhold.apps.code.workspace import Workspace

# What `pytest -q --tb=short -rfE` printed for the run REPORT describes.
CONSOLE = """F.FE                                                                     [100%]
==================================== ERRORS ====================================
_______________________ ERROR at teardown of test_clean ________________________
tests/test_calc.py:9: in broken
    raise RuntimeError("teardown boom")
E   RuntimeError: teardown boom
=================================== FAILURES ===================================
___________________________________ test_sub ___________________________________
tests/test_calc.py:14: in test_sub
    assert sub(7, 4) == 3
E   assert 11 == 3
=========================== short test summary info ============================
FAILED tests/test_calc.py::test_sub - assert 11 == 3
FAILED tests/test_calc.py::TestDiv::test_div[0] - ZeroDivisionError: division by zero
ERROR tests/test_calc.py::test_clean - RuntimeError: teardown boom
2 failed, 2 passed, 1 skipped, 1 error in 0.05s
"""
CASE = '<testcase classname="{cls}" name="{name}" file="tests/test_calc.py" line="1" time="0">'
REPORT = (
    '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
    '<testsuite name="pytest" errors="1" failures="2" skipped="1" tests="5" time="0.05">'
    + CASE.format(cls="tests.test_calc", name="test_add") + "</testcase>"
    + CASE.format(cls="tests.test_calc", name="test_sub")
    + '<failure message="assert 11 == 3">tests/test_calc.py:14: in test_sub\n'
      "    assert sub(7, 4) == 3\nE   assert 11 == 3</failure></testcase>"
    + CASE.format(cls="tests.test_calc.TestDiv", name="test_div[0]")
    + '<failure message="ZeroDivisionError: division by zero">tests/test_calc.py:20: in '
      "test_div\n    return a / b\nE   ZeroDivisionError: division by zero</failure></testcase>"
    + CASE.format(cls="tests.test_calc", name="test_clean")
    + '<error message="failed on teardown with &quot;RuntimeError: teardown boom&quot;">'
      "tests/test_calc.py:9: in broken\nE   RuntimeError: teardown boom</error></testcase>"
    + CASE.format(cls="tests.test_calc", name="test_later")
    + '<skipped type="pytest.skip" message="later">skipped</skipped></testcase>'
    "</testsuite></testsuites>"
).encode()


def result(output: str = CONSOLE, returncode: int = 1) -> SandboxResult:
    return SandboxResult(("python", "-m", "pytest"), returncode, output, "", 0.1)


# -- the report ------------------------------------------------------------------------------


def test_counts_failing_tests_and_first_failure_come_from_the_xml() -> None:
    report = read_report(result(), REPORT)
    assert (report.passed, report.failed, report.errors) == (2, 2, 1)  # as pytest counts
    assert report.failing == ("tests/test_calc.py::test_sub",
                              "tests/test_calc.py::TestDiv::test_div[0]",
                              "tests/test_calc.py::test_clean")
    assert report.signature is not None  # the first failure, not the first E line printed
    assert (report.signature.exception, report.signature.frames) == ("AssertionError",
                                                                      ("test_sub",))
    console = read_report(result())
    assert console.signature is not None and console.signature.exception == "RuntimeError"
    assert report.output == console.output and not report.ok


def test_a_collection_error_is_one_error_named_by_its_file() -> None:
    xml = (b'<testsuites><testsuite errors="1" failures="0" skipped="0" tests="1">'
           b'<testcase classname="" name="tests.test_calc" file="tests/test_calc.py">'
           b'<error message="collection failure">tests/test_calc.py:1: in &lt;module&gt;\n'
           b"E   ModuleNotFoundError: No module named 'nope'</error></testcase>"
           b"</testsuite></testsuites>")
    report = read_report(result("1 error in 0.1s", returncode=2), xml)
    assert (report.passed, report.failed, report.errors) == (0, 0, 1)
    assert report.failing == ("tests/test_calc.py",)
    assert report.signature is not None and report.signature.exception == "ModuleNotFoundError"


def test_no_tests_collected_stays_an_error() -> None:
    xml = b'<testsuites><testsuite errors="0" failures="0" skipped="0" tests="0"/></testsuites>'
    report = read_report(result("no tests ran in 0.01s", returncode=5), xml)
    assert (report.passed, report.failed, report.errors) == (0, 0, 1)


@pytest.mark.parametrize("xml", [
    REPORT[:-40],  # cut short: pytest killed while writing
    b"not xml at all",
    b"<html><body>2 passed</body></html>",  # well-formed, not a report
    b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
    b'<testsuite tests="9"><testcase name="&b;"/></testsuite>',  # a DTD: entities
    b'<!DOCTYPE t SYSTEM "file:///etc/passwd"><testsuite tests="1"/>',  # external entity
    b'<?xml version="1.0" encoding="no-such-codec"?><testsuite tests="1"/>',
    b"<testsuites>" + b"<x>" * 100 + b"</x>" * 100 + b"</testsuites>",  # deeper than pytest
    b"",
])
def test_a_malformed_report_falls_back_to_the_console_summary(xml: bytes) -> None:
    assert parse_junit(xml) is None
    report = read_report(result(), xml)
    assert (report.passed, report.failed, report.errors) == (2, 2, 1)
    assert report.failing == ("tests/test_calc.py::test_sub",
                              "tests/test_calc.py::TestDiv::test_div[0]",
                              "tests/test_calc.py::test_clean")


def test_an_oversized_report_is_not_parsed() -> None:
    padding = b"<testcase/>" * (JUNIT_LIMIT // 11 + 1)
    xml = b'<testsuite tests="1">' + padding + b"</testsuite>"
    assert len(xml) > JUNIT_LIMIT and parse_junit(xml) is None


# -- asking pytest for it ----------------------------------------------------------------------


def test_pytest_commands_ask_for_a_report_and_others_do_not(tmp_path: Path) -> None:
    where = tmp_path / "r.xml"
    asked = with_junit(["py", "-m", "pytest", "-q", "--", "t.py"], where)
    assert asked == ["py", "-m", "pytest", f"--junitxml={where}", "-o", "junit_family=xunit1",
                     "-q", "--", "t.py"]
    assert with_junit(["/venv/bin/pytest", "-x"], where) == [
        "/venv/bin/pytest", f"--junitxml={where}", "-o", "junit_family=xunit1", "-x"]
    assert with_junit(["make", "test"], where) is None
    assert with_junit(["py", "-m", "pytest", "--junitxml=mine.xml"], where) is None
    assert with_junit(["py", "-m", "pytest", "-p", "no:junitxml"], where) is None


# -- reading it from the working copy ---------------------------------------------------------


class PlantingRunner:
    """A stand-in sandbox whose "tests" put something at the report path they were given."""

    def __init__(self, project: Path, plant: str, output: str = CONSOLE) -> None:
        self.project, self.plant, self.output = project, plant, output
        self.limits = Limits(wall_seconds=10)
        self.commands: list[list[str]] = []

    def check(self) -> None:
        return None

    def run(self, command: Sequence[str], *, network: bool = False,
            limits: Limits | None = None) -> SandboxResult:
        self.commands.append(list(command))
        target = next((Path(arg.split("=", 1)[1]) for arg in command
                       if arg.startswith("--junitxml=")), None)
        assert target is not None and target.parent == self.project
        if self.plant == "report":
            target.write_bytes(REPORT)
        elif self.plant.startswith("link:"):
            target.symlink_to(self.plant[5:])
        elif self.plant == "fifo":
            os.mkfifo(target)
        return SandboxResult(tuple(command), 1, self.output, "", 0.1)


def leftovers(project: Path) -> list[Path]:
    return [p for p in project.iterdir() if p.name.startswith(JUNIT_PREFIX)]


def test_the_report_is_read_then_removed(tmp_path: Path) -> None:
    runner = PlantingRunner(tmp_path, "report", output="(console output that says nothing)")
    report = run_tests(runner, ["py", "-m", "pytest", "-q"], timeout_s=10)
    assert (report.passed, report.failed, report.errors) == (2, 2, 1)
    assert leftovers(tmp_path) == []


def test_a_link_planted_at_the_report_path_is_not_followed(tmp_path: Path) -> None:
    project = tmp_path / "work"
    project.mkdir()
    outside = tmp_path / "outside.xml"  # a host file the link points to; a valid report
    outside.write_bytes(REPORT)
    runner = PlantingRunner(project, f"link:{outside}", output="1 failed, 7 passed in 0.1s")
    report = run_tests(runner, ["py", "-m", "pytest"], timeout_s=10)
    assert (report.passed, report.failed) == (7, 1)  # the console's, not the linked file's
    assert leftovers(project) == []  # the link is gone ...
    assert outside.read_bytes() == REPORT  # ... and what it pointed to is untouched


def test_a_fifo_at_the_report_path_does_not_block(tmp_path: Path) -> None:
    runner = PlantingRunner(tmp_path, "fifo")
    report = run_tests(runner, ["py", "-m", "pytest"], timeout_s=10)
    assert (report.passed, report.failed, report.errors) == (2, 2, 1)  # from the console
    assert leftovers(tmp_path) == []


def test_a_missing_report_falls_back_to_the_console(tmp_path: Path) -> None:
    runner = PlantingRunner(tmp_path, "nothing")
    assert take_junit(tmp_path / f"{JUNIT_PREFIX}none.xml") is None
    report = run_tests(runner, ["py", "-m", "pytest"], timeout_s=10)
    assert (report.passed, report.failed, report.errors) == (2, 2, 1)


def test_other_commands_are_run_as_given(tmp_path: Path) -> None:
    runner = PlantingRunner(tmp_path, "nothing", output="ok")

    def run(command: Sequence[str], **_: object) -> SandboxResult:
        runner.commands.append(list(command))
        return SandboxResult(tuple(command), 0, "ok", "", 0.1)

    runner.run = run  # type: ignore[method-assign]
    report = run_tests(runner, ["make", "check"], timeout_s=10)
    assert runner.commands == [["make", "check"]] and (report.passed, report.ok) == (1, True)


def test_the_report_never_reaches_a_commit(tmp_path: Path) -> None:
    project = tmp_path / "calc"
    project.mkdir()
    (project / "calc.py").write_text("x = 1\n")
    ws = Workspace.create(project, tmp_path / "run" / "work")
    run_tests(PlantingRunner(ws.path, "report"), ["py", "-m", "pytest"], timeout_s=10)
    ws.write("calc.py", "x = 2\n")
    ws.commit("an iteration")
    assert list(ws.changed()) == ["calc.py"]


@pytest.mark.skipif(shutil.which("bwrap") is None,
                    reason="bubblewrap is not installed (scripts/setup.sh does it)")
def test_real_pytest_in_the_sandbox_reports_through_xml(tmp_path: Path) -> None:
    project = tmp_path / "calc"
    project.mkdir()
    (project / "calc.py").write_text("def sub(a, b):\n    return a + b\n")
    (project / "test_calc.py").write_text(
        "from calc import sub\n\n\ndef test_zero():\n    assert sub(0, 0) == 0\n\n\n"
        "def test_sub():\n    assert sub(7, 4) == 3\n")
    sandbox = Sandbox(project, python=sys.executable, limits=Limits(wall_seconds=60))
    report = run_tests(sandbox, default_command(project, sys.executable), timeout_s=60)
    assert (report.passed, report.failed, report.errors) == (1, 1, 0)
    assert report.failing == ("test_calc.py::test_sub",)
    assert report.signature is not None and report.signature.frames == ("test_sub",)
    assert leftovers(project) == []
