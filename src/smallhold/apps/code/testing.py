"""Running a project's checks in the sandbox and reading what they say.

pytest is the common case: its summary line gives the counts the circuit breaker watches
("no progress" = the passing count did not rise) and its ``FAILED`` lines name the tests.
Any other command counts as one check that passes on exit 0.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from smallhold.apps.code.sandbox import Limits, Sandbox, SandboxResult
from smallhold.apps.code.signatures import Signature, signature_of
from smallhold.errors import ProjectError

_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)")
_SUMMARY = re.compile(r"^=*\s*(?:\d+ \w+(?:, )?)+.* in [\d.]+s", re.M)
_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.M)
PYTEST_FLAGS = ("-q", "--tb=short", "-rfE", "-p", "no:cacheprovider", "--color=no")
TAIL_CHARS = 3_000


@dataclass(frozen=True)
class TestReport:
    __test__ = False  # not a pytest test class, whatever its name says

    passed: int
    failed: int
    errors: int
    returncode: int
    failing: tuple[str, ...]
    output: str
    signature: Signature | None
    timed_out: bool
    contained: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def summary(self) -> str:
        if self.timed_out:
            return "the tests did not finish within the time limit (killed)"
        state = "all passed" if self.ok else "failing"
        text = f"{self.passed} passed, {self.failed} failed, {self.errors} errors ({state})"
        if self.failing:
            text += ": " + ", ".join(self.failing[:5])
        return text

    def tail(self, chars: int = TAIL_CHARS) -> str:
        """The end of the output, where the tracebacks and the summary are."""
        return self.output if len(self.output) <= chars else "..." + self.output[-chars:]


def default_command(project: Path, python: str) -> list[str]:
    """``python -m pytest`` when the project looks like it has pytest tests."""
    has_tests = any(project.glob("test_*.py")) or any(project.glob("*_test.py")) or any(
        p.is_file() for d in ("tests", "test") for p in (project / d).rglob("test*.py"))
    if not has_tests:
        raise ProjectError(
            f"{project} has no tests the agent can find (tests/test_*.py or test_*.py). "
            "Add a test that fails until the task is done, or pass --test-command.")
    return [python, "-m", "pytest", *PYTEST_FLAGS]


def parse_command(text: str, python: str) -> list[str]:
    """A user's --test-command; a leading ``python`` means the sandbox's interpreter."""
    argv = shlex.split(text)
    if not argv:
        raise ProjectError("the test command is empty")
    if argv[0] in ("python", "python3"):
        argv[0] = python
    if argv[1:3] == ["-m", "pytest"]:
        argv += [f for f in PYTEST_FLAGS if f not in argv]
    return argv


def read_report(result: SandboxResult) -> TestReport:
    output = (result.stdout + ("\n" + result.stderr if result.stderr.strip() else "")).strip()
    counts = {"passed": 0, "failed": 0, "errors": 0}
    summaries = _SUMMARY.findall(output)
    is_pytest = bool(summaries) or "no tests ran" in output
    if summaries:
        for number, word in _COUNT.findall(summaries[-1]):
            key = "errors" if word.startswith("error") else word
            if key in counts:
                counts[key] = int(number)
    elif not result.ok:
        counts["failed"] = 1
    else:
        counts["passed"] = 1
    if result.returncode == 5 and is_pytest:
        counts = {"passed": 0, "failed": 0, "errors": 1}
    return TestReport(
        passed=counts["passed"], failed=counts["failed"], errors=counts["errors"],
        returncode=result.returncode, failing=tuple(_FAILED.findall(output)), output=output,
        signature=None if result.ok else signature_of(output), timed_out=result.timed_out,
        contained=tuple(result.contained))


def run_tests(sandbox: Sandbox, command: Sequence[str], *, timeout_s: float,
              network: bool = False) -> TestReport:
    limits = Limits(wall_seconds=timeout_s, cpu_seconds=int(timeout_s * 2) + 5,
                    memory_bytes=sandbox.limits.memory_bytes,
                    file_bytes=sandbox.limits.file_bytes, processes=sandbox.limits.processes)
    return read_report(sandbox.run(list(command), limits=limits, network=network))
