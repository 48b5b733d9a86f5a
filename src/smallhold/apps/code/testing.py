"""Running a project's checks in the sandbox and reading what they say.

pytest is the common case. It is asked for a JUnit XML report (``--junitxml``) in the
working copy, which gives the counts the circuit breaker watches ("no progress" = the passing
count did not rise), the failing tests and the text of the first failure. The report is
written by the code under test, so it is read like anything else from the sandbox: a regular
file opened without following links (``O_NOFOLLOW``), at most :data:`JUNIT_LIMIT` bytes, no
DTD (so no entities), parsed as a stream; then it is deleted, and the next step's
``Workspace.discard`` removes it anyway if a kill came first, so it is never committed.
Without a usable report (pytest killed, a malformed file), pytest's console summary and its
``FAILED`` lines say the same less precisely. Any other command counts as one check that
passes on exit 0.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import stat
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from smallhold.apps.code.errors import ProjectError
from smallhold.apps.code.sandbox import Limits, Runner, SandboxResult
from smallhold.apps.code.signatures import Signature, signature_of

_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)")
_SUMMARY = re.compile(r"^=*\s*(?:\d+ \w+(?:, )?)+.* in [\d.]+s", re.M)
_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.M)
PYTEST_FLAGS = ("-q", "--tb=short", "-rfE", "-p", "no:cacheprovider", "--color=no")
TAIL_CHARS = 3_000
JUNIT_PREFIX = ".smallhold-junit-"  # + a random hex + ".xml", in the working copy's root
JUNIT_LIMIT = 8 * 1024**2  # bytes of a JUnit report read; a longer one is not used
_JUNIT_DEPTH = 16  # pytest writes 4 levels (testsuites > testsuite > testcase > failure)
_DTD = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.I)


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


def is_test_file(rel: str) -> bool:
    """Whether a project path is a test (or pytest's conftest) by pytest's naming."""
    name = rel.rsplit("/", 1)[-1]
    return rel.startswith(("tests/", "test/")) or name.startswith("test_") or \
        name.endswith("_test.py") or name == "conftest.py"


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


@dataclass(frozen=True)
class _Junit:
    """What a JUnit XML report says: counts, failing test ids, the first failure's text."""

    passed: int
    failed: int
    errors: int
    failing: tuple[str, ...]
    first_failure: str


def is_pytest(command: Sequence[str]) -> bool:
    """``python -m pytest ...`` or a ``pytest`` executable."""
    return bool(command) and (list(command[1:3]) == ["-m", "pytest"]
                              or Path(command[0]).name in ("pytest", "py.test"))


def with_junit(command: Sequence[str], report: Path) -> list[str] | None:
    """``command`` asking pytest for a JUnit XML report at ``report`` (xunit1, which names
    each test's file); None when the command already chose a report or switched the plugin
    off. The options go right after ``pytest``, before anything a ``--`` would end."""
    argv = list(command)
    if not is_pytest(argv) or any(
            arg.startswith(("--junitxml", "--junit-xml")) or arg.endswith("no:junitxml")
            for arg in argv):
        return None
    at = 3 if argv[1:3] == ["-m", "pytest"] else 1
    return [*argv[:at], f"--junitxml={report}", "-o", "junit_family=xunit1", *argv[at:]]


def take_junit(path: Path) -> bytes | None:
    """The report's bytes, or None; the file is removed either way.

    The sandbox could have put anything at ``path``: a link is not followed (``O_NOFOLLOW``),
    a FIFO does not block (``O_NONBLOCK``), only a regular file is read, and only up to
    :data:`JUNIT_LIMIT` bytes. Removing a link removes the link, not what it points to."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # missing (pytest killed), a symbolic link (ELOOP), ...
        data = None
    else:
        try:
            info = os.fstat(fd)
            data = b""
            if stat.S_ISREG(info.st_mode) and info.st_size <= JUNIT_LIMIT:
                with os.fdopen(fd, "rb", closefd=False) as handle:
                    data = handle.read(JUNIT_LIMIT + 1)
        except OSError:
            data = b""
        finally:
            os.close(fd)
    with contextlib.suppress(OSError):  # a directory planted there stays: discard() drops it
        os.unlink(path)
    return data if data and len(data) <= JUNIT_LIMIT else None


def _test_id(case: ET.Element) -> str:
    """pytest's node id (``tests/test_x.py::TestA::test_b[1]``) back from an xunit1
    testcase's file, classname and name; a collection error is the file alone."""
    file, classname, name = (case.get(key, "") for key in ("file", "classname", "name"))
    if not file:
        return "::".join(part for part in (classname, name) if part)
    module = file.removesuffix(".py").replace("/", ".")
    if not classname and name == module:
        return file
    inner = classname[len(module) + 1:].split(".") if classname.startswith(module + ".") \
        else []
    return "::".join([file, *inner, name])


def parse_junit(data: bytes) -> _Junit | None:
    """Read pytest's JUnit XML; None for anything that is not a well-formed report.

    A DTD is refused before parsing (pytest never writes one, and it is where entity
    expansion lives), the depth is capped and elements are dropped as soon as they are read,
    so memory stays small whatever the file holds. Counts follow pytest's summary line:
    each ``failure`` is a failed test, each ``error`` an error, and a test passed if it
    ran to the end without failing or being skipped (an error in its teardown only is
    "1 passed, 1 error", as pytest counts it)."""
    if len(data) > JUNIT_LIMIT or _DTD.search(data):
        return None
    failed: list[str] = []
    errored: list[str] = []
    clean: list[str] = []  # tests whose call passed
    spoiled: set[str] = set()  # ... and tests that failed, errored before the end or skipped
    first = ""
    suites = 0
    stack: list[ET.Element] = []  # the open elements, root first
    case: tuple[str, list[tuple[str, str]]] | None = None  # (test id, its outcomes) while open
    try:
        for event, element in ET.iterparse(io.BytesIO(data), events=("start", "end")):
            if event == "start":
                if len(stack) >= _JUNIT_DEPTH or (
                        not stack and element.tag not in ("testsuites", "testsuite")):
                    return None
                suites += element.tag == "testsuite"
                if element.tag == "testcase":
                    case = (_test_id(element), [])
                stack.append(element)
                continue
            stack.pop()
            outcome = element.tag in ("failure", "error", "skipped")
            if outcome and case is not None and stack and stack[-1].tag == "testcase":
                case[1].append((element.tag, element.get("message", "")))
                if element.tag != "skipped":
                    (failed if element.tag == "failure" else errored).append(case[0])
                    if not first:
                        first = (element.text or "").strip() or element.get("message", "")
            elif element.tag == "testcase" and case is not None:
                test, outcomes = case
                if all(tag == "error" and message.startswith("failed on teardown")
                       for tag, message in outcomes):
                    clean.append(test)
                else:
                    spoiled.add(test)
                case = None
            if stack:  # read: let it go
                del stack[-1][-1]
    except (ET.ParseError, ValueError, LookupError, RecursionError):
        return None
    if not suites:
        return None
    return _Junit(passed=sum(test not in spoiled for test in clean), failed=len(failed),
                  errors=len(errored), failing=tuple(dict.fromkeys(failed + errored)),
                  first_failure=first)


def read_report(result: SandboxResult, junit: bytes | None = None) -> TestReport:
    """What a test run says: from pytest's JUnit XML report when there is a usable one,
    else from its console output."""
    output = (result.stdout + ("\n" + result.stderr if result.stderr.strip() else "")).strip()
    parsed = parse_junit(junit) if junit else None
    if parsed is not None:
        counts = {"passed": parsed.passed, "failed": parsed.failed, "errors": parsed.errors}
        if result.returncode == 5:  # pytest: no tests collected
            counts = {"passed": 0, "failed": 0, "errors": 1}
        signature = None
        if not result.ok:
            signature = signature_of(parsed.first_failure) or signature_of(output)
        return TestReport(
            passed=counts["passed"], failed=counts["failed"], errors=counts["errors"],
            returncode=result.returncode, failing=parsed.failing, output=output,
            signature=signature, timed_out=result.timed_out,
            contained=tuple(result.contained))
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


def run_tests(sandbox: Runner, command: Sequence[str], *, timeout_s: float,
              network: bool = False) -> TestReport:
    limits = Limits(wall_seconds=timeout_s, cpu_seconds=int(timeout_s * 2) + 5,
                    memory_bytes=sandbox.limits.memory_bytes,
                    file_bytes=sandbox.limits.file_bytes, processes=sandbox.limits.processes)
    argv: list[str] = list(command)
    report: Path | None = None
    if sandbox.project.is_dir():  # the working copy: the same path inside the sandbox and out
        wanted = sandbox.project / f"{JUNIT_PREFIX}{uuid.uuid4().hex}.xml"
        asked = with_junit(argv, wanted)
        if asked is not None:
            argv, report = asked, wanted
    junit = None
    try:
        result = sandbox.run(argv, limits=limits, network=network)
    finally:
        if report is not None:
            junit = take_junit(report)
    return read_report(result, junit)
