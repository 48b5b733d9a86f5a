"""The agent loop as a DBOS workflow: baseline, then write → apply → test (→ undo) per iteration.

The first iteration writes the change directly and greedily, as one careful single attempt
would; planning and reflecting first lost to a plain single shot (issue 27). Each later
iteration is a repair: one sampled call that reads the failing check's expected and actual
values (:mod:`.evidence`), states a diagnosis and writes the corrected files. The diagnosis
joins the run's hypothesis ledger, and the next tests judge it.

Each phase of each iteration is a DBOS step. A step's full output (plans, file contents,
test output) goes to the encrypted vault; what DBOS checkpoints is only the small control
data the loop decides on (counts, signature keys, tokens), so the system database holds no
code. After a crash or ``kill -9`` the workflow is recovered by ``smallhold code resume``:
finished steps return their checkpoint, and the first unfinished step runs again. Steps are
safe to run again: ``apply`` first drops whatever a killed step left uncommitted, and every
file is replaced atomically.

The workflow is a class, :class:`AgentLoop`, built from an :class:`Agent` (which is built
from the profile's home): DBOS records each run's instance name (the run id) and, on
recovery, calls the steps on the instance registered under it, so what the steps need (the
model, the vault, the sandbox) is never checkpointed and never a module global. Steps
return small typed records (:class:`Baseline`, :class:`~.breaker.Outcome`, ...), the only thing DBOS
stores of them.
"""

from __future__ import annotations

import hashlib
import itertools
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dbos import DBOS, DBOSConfiguredInstance, SetWorkflowID

from smallhold import durable
from smallhold.apps.code import approval, edits, evidence, locate, prompts, reflection
from smallhold.apps.code.breaker import Budget, Outcome, Stop, should_stop
from smallhold.apps.code.docstrings import keep_docstrings, restore_docstrings
from smallhold.apps.code.errors import (
    EditFormatError,
    ProjectError,
    RunFormatError,
    RunNotFoundError,
)
from smallhold.apps.code.imports import LostName, lost_names, restore
from smallhold.apps.code.memory import (
    MIN_CHECKS,
    CodeMemory,
    checks,
    render_hints,
    short_term,
    task_key,
)
from smallhold.apps.code.merge import merge
from smallhold.apps.code.models import Edit, FileChange, Iteration, Plan, Proposal, Run, Task
from smallhold.apps.code.reflection import Hypothesis
from smallhold.apps.code.safety import review
from smallhold.apps.code.sandbox import Limits, Runner, SandboxFactory, bubblewrap
from smallhold.apps.code.signatures import signature_of
from smallhold.apps.code.testing import TestReport, is_test_file, run_tests
from smallhold.apps.code.workspace import Workspace, safe_relative
from smallhold.errors import ConfigError, RecordNotFoundError
from smallhold.kit import Home
from smallhold.runtime import Delta, GenerationParams, Message, Runtime, StreamEvent
from smallhold.runtime.types import collect
from smallhold.store.collections import Collection
from smallhold.store.handle import VaultHandle
from smallhold.store.memory.store import MemoryStore

RUNS = "code_runs"
ITERATIONS = "code_iterations"
PROPOSALS = "code_proposals"  # the vetted changes of an iteration, between write and apply
EDIT_PARAMS = GenerationParams(max_tokens=2048, temperature=0.0, seed=7)
# Retries sample. At 0.2 they came out byte-identical to the greedy answer (min-p 0.05 and
# top-k 40 leave one token standing almost everywhere at that temperature): 14 of 18 retries
# changed nothing. At 0.7 a retry is a different attempt that still follows the prompt.
RETRY_TEMPERATURE = 0.7
MAX_REDRAWS = 2  # re-asks within one repair that brought back code already tried
# Iterations that start over from the files as they were, with the failing check but without
# the failed code: repairs stay anchored on the first attempt's idea (Mbpp/77: every repair
# restated a wrong formula), which no temperature breaks.
FRESH_STARTS = frozenset({3})
# The last start is a plain one, as a single shot would make it: the task and the files it
# may change, nothing the tests showed, greedy. Every other attempt carries the tests and
# their failures, and when those misled the first one the loop lost tasks a single shot of
# the task alone solves (Mbpp/87 in every 100-task run).
PLAIN_START = 5
STARTS = FRESH_STARTS | {PLAIN_START}
REDRAW_TEMPERATURE = 1.0
# The loop's shape, kept in each run: a run written by another shape (format 1 planned and
# reflected in steps of their own) cannot be resumed by this workflow, whose steps differ.
LOOP_FORMAT = 2
Notify = Callable[[str], None]


@dataclass
class Agent:
    """Everything one process needs to run or resume agent workflows."""

    runtime: Runtime
    handle: VaultHandle
    memory: CodeMemory
    runs_dir: Path
    decider: approval.Decider = field(default_factory=approval.DenyAll)
    notify: Notify = lambda _message: None
    # each piece of the model's reply as it is generated (the CLI's live view); None: off
    watch: Callable[[str], None] | None = None
    limits: Limits = field(default_factory=Limits)
    clock: Callable[[], float] = time.time
    sandboxes: SandboxFactory = bubblewrap
    home: Home | None = None  # what durable runs launch on; set by :meth:`on`

    def __post_init__(self) -> None:
        self.runs = Collection(self.handle, RUNS, Run)
        self.iterations = Collection(self.handle, ITERATIONS, Iteration)
        self.proposals = Collection(self.handle, PROPOSALS, Proposal)

    @classmethod
    def on(cls, home: Home, *, policy: Path | None = None, limits: Limits | None = None,
           sandboxes: SandboxFactory = bubblewrap,
           decider: approval.Decider | None = None) -> Agent:
        """The agent of ``home``'s profile: its runtime, vault, embedder and user seam
        (approvals are asked through ``home.io``; ``policy`` is an approval policy file)."""
        memory = CodeMemory(lambda: MemoryStore(home.vault, home.embedder))
        chosen = decider or approval.choose(policy, home.io.interactive, home.io.confirm)
        return cls(home.runtime, home.vault, memory, home.folder("code-runs"),
                   decider=chosen, notify=home.io.notify, limits=limits or Limits(),
                   sandboxes=sandboxes, home=home)

    # -- records ----------------------------------------------------------------------------

    def run(self, run_id: str) -> Run:
        try:
            return self.runs.get(run_id).value
        except RecordNotFoundError:
            matches = [r.value for r in self.runs.all() if r.id.startswith(run_id)]
            if len(matches) == 1:
                return matches[0]
            raise RunNotFoundError(f"no coding run {run_id!r}; `smallhold code runs` lists "
                                   "them.") from None

    def save(self, run: Run) -> None:
        self.runs.put(run, run.id)

    def iteration(self, run_id: str, number: int) -> Iteration:
        """Iteration ``number`` as saved, or a new one (a step that had not saved it yet);
        a vault that cannot be read is raised, not read as an empty iteration."""
        try:
            return self.iterations.get(f"{run_id}:{number}").value
        except RecordNotFoundError:
            return Iteration(run_id=run_id, number=number)

    def history(self, run_id: str, upto: int) -> list[Iteration]:
        return [self.iteration(run_id, n) for n in range(1, upto)]

    def put(self, it: Iteration) -> None:
        self.iterations.put(it, f"{it.run_id}:{it.number}")

    def workspace(self, run: Run) -> Workspace:
        return Workspace.attach(Path(run.workspace), Path(run.task.project))

    def sandbox(self, run: Run) -> Runner:
        """The run's sandbox (bubblewrap unless the agent was given another factory);
        attaching first moves the repository of a run an older version made out of the
        copy before untrusted code runs there again."""
        self.workspace(run)
        return self.sandboxes(Path(run.workspace), run.task.python, self.limits)

    def test(self, run: Run) -> TestReport:
        """The task's tests in the sandbox, on the run's working copy as it is now."""
        return run_tests(self.sandbox(run), run.task.test_command,
                         timeout_s=run.task.timeout_s, network=run.task.network)

    # -- model calls ------------------------------------------------------------------------

    def ask_edit(self, run: Run, messages: list[Message], params: GenerationParams,
                 retries: int = 2) -> tuple[Edit | None, int, str, str]:
        """(the edit in the fenced-file format or None, tokens spent, why it could not be
        read, the reply's text); a reply it cannot read goes back with why."""
        spent, history, problem = 0, list(messages), ""
        for _attempt in range(retries + 1):
            done = collect(self._watched(self.runtime.stream(
                history, model=run.task.model, params=params, app="code",
                session=f"code-{run.id}")))
            spent += done.usage.prompt_tokens + done.usage.completion_tokens
            try:
                return edits.parse_edit(done.text), spent, "", done.text
            except EditFormatError as exc:
                problem = str(exc)
                history = [*history, Message(role="assistant", content=done.text),
                           Message(role="user", content=f"I could not read that: {problem}. "
                                                        f"{edits.INSTRUCTIONS}")]
        return None, spent, f"no readable edit after {retries + 1} tries; {problem}", ""

    def _watched(self, events: Iterator[StreamEvent]) -> Iterator[StreamEvent]:
        for event in events:
            if self.watch is not None and isinstance(event, Delta):
                self.watch(event.text)
            yield event

    # -- starting ---------------------------------------------------------------------------

    def create(self, task: Task) -> Run:
        run_id = f"r{time.strftime('%Y%m%d')}-{uuid.uuid4().hex[:8]}"
        folder = self.runs_dir / run_id
        workspace = Workspace.create(Path(task.project), folder / "work")
        tests = _test_sources(workspace)
        run = Run(id=run_id, task=task.model_copy(update={"project": str(workspace.project)}),
                  workspace=str(workspace.path), started_at=self.clock(), format=LOOP_FORMAT,
                  key=task_key(tests), checks=checks(tests))
        self.save(run)
        return run


def _test_sources(ws: Workspace) -> dict[str, str]:
    return {f: ws.read(f) for f in ws.files() if f.endswith(".py") and is_test_file(f)}


def _read_files(ws: Workspace, editable: list[str] | None = None
                ) -> tuple[list[str], dict[str, str]]:
    """The project's file list and the files shown in full: Python everywhere, and text
    files (configs, docs) only where the task may change them. A config the model may not
    edit is read by the tests, not by the model; every shown token is read (prefilled) on
    every call, which on two cores is most of a small task's time."""
    tree = ws.files()
    texts = (".toml", ".cfg", ".md", ".txt", ".json", ".ini")
    shown = {f: ws.read(f) for f in tree if f.endswith(".py") or (
        f.endswith(texts) and (editable is None or f in editable))}
    return tree, shown


@dataclass(frozen=True)
class Standing:
    """How the tests stand on the working copy as an iteration finds it: after the last
    iteration that was kept, or the baseline when there is none."""

    passed: int
    summary: str
    tail: str
    timed_out: bool


def standing(run: Run, history: list[Iteration]) -> Standing:
    kept = [it for it in history if not it.undone]
    if kept:
        last = kept[-1]
        return Standing(last.passed, last.test_summary, "" if last.ok else last.test_tail,
                        last.signature_key == "timeout")
    return Standing(run.baseline_passed, run.baseline_summary, run.baseline_tail, False)


def worse(it: Iteration, before: Standing) -> str:
    """Why ``it`` left the tests worse than ``before`` (empty if it did not): fewer tests
    pass, or the suite now hangs. Equal counts are kept, since a new failing test or a
    different error can be a step toward the fix."""
    if it.signature_key == "timeout" and not before.timed_out:
        return "the tests no longer finish"
    if it.passed < before.passed:
        return f"{it.passed} test(s) passed, {before.passed} before"
    return ""


def sampling(params: GenerationParams, number: int) -> GenerationParams:
    """``params`` as iteration ``number`` uses them. The first try and the plain start are
    greedy: a small model's most likely answer is its best single answer (pass@1 is measured
    greedy), and the plain start's prompt differs from the first's. Any other retry is
    sampled at :data:`RETRY_TEMPERATURE` with a seed of its own, so that a repair is a new
    attempt even when its prompt differs little from the last one's."""
    if number in (1, PLAIN_START):
        return params.model_copy(update={"temperature": 0.0})
    return params.model_copy(update={"temperature": RETRY_TEMPERATURE,
                                     "seed": (params.seed or 0) + number})


def _hints(agent: Agent, run: Run, tail: str) -> str:
    """Memories for a repair: a solution of a task that tests the same functions, and the
    fix of an error of this shape."""
    if not run.task.memory:
        return ""
    patterns = agent.memory.patterns(run.task.description, run.key) if run.key else []
    failures = []
    sig = signature_of(tail) if tail else None
    if sig is not None:
        failures = agent.memory.failure_hints(sig, run.key)
    return render_hints(patterns, failures)


def _report_into(it: Iteration, report: TestReport) -> None:
    it.passed, it.failed, it.ok = report.passed, report.failed + report.errors, report.ok
    it.test_summary, it.test_tail = report.summary, report.tail()
    it.signature = report.signature.text if report.signature else (
        "timeout" if report.timed_out else None)
    it.signature_key = report.signature.key if report.signature else (
        "timeout" if report.timed_out else None)
    it.contained = list(report.contained)
    it.explained = evidence.explain(report.output)
    # the breaker's "same failure" is the same check failing with the same values; the
    # signature blanks values out (right for memory), so every wrong answer looked alike
    it.failure_key = hashlib.sha256(it.explained.encode()).hexdigest()[:16] \
        if it.explained else it.signature_key


# -- what the steps hand back to the workflow (all DBOS keeps of them) -------------------

@dataclass(frozen=True)
class Baseline:
    passed: int
    ok: bool
    timed_out: bool
    summary: str


@dataclass(frozen=True)
class Written:
    changes: int
    tokens: int


@dataclass(frozen=True)
class Applied:
    changed: int
    commit: str


@dataclass(frozen=True)
class Finished:
    status: str


# -- the steps' work, on an agent ----------------------------------------------------------

def baseline(agent: Agent, run_id: str) -> Baseline:
    run = agent.run(run_id)
    agent.notify("running the tests before any change")
    report = agent.test(run)
    run.baseline_passed, run.baseline_failed = report.passed, report.failed + report.errors
    run.baseline_summary, run.baseline_tail = report.summary, "" if report.ok else report.tail()
    run.baseline_explained = evidence.explain(report.output)
    agent.save(run)
    return Baseline(report.passed, report.ok, report.timed_out, report.summary)


def _messages(agent: Agent, run: Run, number: int) -> list[Message]:
    """Iteration ``number``'s conversation: the direct write first, then repairs, with the
    starts over from the files as they were (:data:`STARTS`) among them."""
    ws = agent.workspace(run)
    tree, files = _read_files(ws, run.task.editable)
    tests = [f for f in files if is_test_file(f)]
    if number == PLAIN_START:  # the task and the files alone: no tests, nothing they said
        return prompts.plain_messages(run.task, _originals(ws, [f for f in files
                                                                if f not in tests]), tree)
    if number == 1:
        before = "" if not run.baseline_summary or run.baseline_tail == "" else \
            prompts.baseline_output(run.baseline_summary, run.baseline_explained,
                                    run.baseline_tail)
        where = locate.where_to_look(locate.places(run.task.description, files, tests,
                                                   run.baseline_explained))
        return prompts.write_messages(run.task, files, tree, before, where)
    history = agent.history(run.id, number)
    last = history[-1]
    failing = prompts.test_output(last.test_summary, last.explained, last.test_tail)
    where = locate.where_to_look(locate.places(run.task.description, files, tests,
                                               last.explained))
    if number in FRESH_STARTS:
        return prompts.fresh_messages(run.task, _originals(ws, files), tree, failing, where)
    return prompts.repair_messages(run.task, files, tree, short_term(history),
                                   _hints(agent, run, last.test_tail), run.hypotheses, last,
                                   failing, where)


def _originals(ws: Workspace, files: Iterable[str]) -> dict[str, str]:
    """``files`` as they were before the run (two git reads each: only for a start)."""
    return {f: text for f in files if (text := ws.original(f)) is not None}


def _meant(rel: str, content: str, run: Run, ws: Workspace, existing: set[str]) -> str:
    """The file a change to ``rel`` is for: the instructions' example path, copied by a small
    model (9 of 12 replies with the instructions in the system turn, 58 of 110 in v4-mem50,
    and with them at the end of the prompt, where they stand, too), means the one file the task
    may change (with no list, the one source file that is not a test), or of several the one
    that defines most of the names the content defines (none shared, or a tie: itself, and it
    is turned down as not editable or written as a new file); any other path means itself."""
    if rel != edits.EXAMPLE_PATH or rel in existing:
        return rel
    if run.task.editable is not None:
        candidates = [f for f in run.task.editable if f in existing]
    else:
        candidates = sorted(f for f in existing if f.endswith(".py") and not is_test_file(f))
    if not candidates:
        return rel
    if len(candidates) == 1:
        return candidates[0]
    defined = locate.definitions({rel: content, **{f: ws.read(f) for f in candidates}})
    wanted = set(defined.get(rel, []))
    shared = sorted(((len(wanted & set(defined.get(f, []))), f) for f in candidates),
                    reverse=True)
    if shared[0][0] == 0 or shared[0][0] == shared[1][0]:
        return rel
    return shared[0][1]


def _vet(agent: Agent, run: Run, ws: Workspace, edit: Edit, it: Iteration
         ) -> list[FileChange]:
    """Changes that may be applied: inside the project, allowed files, no definition the
    project imports dropped (put back, or the file turned down), approved code."""
    accepted, existing = [], set(ws.files())
    for change in edit.changes:
        try:
            rel = safe_relative(change.path)
        except ProjectError as exc:
            it.rejected.append(str(exc))
            continue
        target = _meant(rel, change.content, run, ws, existing)
        if target != rel:
            it.repaired.append(f"{rel} (the instructions' example path) written to {target}, "
                               "the file of this task that it is for")
            rel = target
        if run.task.editable is not None and rel not in run.task.editable:
            it.rejected.append(f"{rel} is not one of the files this task may change")
            continue
        if not run.task.edit_tests and run.task.editable is None and rel in existing \
                and is_test_file(rel):
            it.rejected.append(f"{rel} is an existing test; tests are not edited to pass")
            continue
        accepted.append(FileChange(path=rel, content=change.content))
    python = {f: ws.read(f) for f in existing if f.endswith(".py")}
    for change in accepted:
        if change.path in python and not is_test_file(change.path):
            merged = merge(python[change.path], change.content)
            change.content = merged.text
            kept = [k for k in merged.kept  # what the model need not hear about
                    if not k.endswith(("docstring", "__future__ import"))]
            if kept:
                it.repaired.append(f"{change.path}: {', '.join(kept)} kept from the file as it "
                                   "was (the reply left them out)")
            if merged.elided:
                it.repaired.append(f"{change.path}: {', '.join(merged.elided)} written as `...`;"
                                   " kept as it was")
            change.content, kept = keep_docstrings(python[change.path], change.content)
            change.content = restore_docstrings(python[change.path], change.content)
            if kept:
                it.repaired.append(f"{change.path}: the docstring of {', '.join(kept)} kept "
                                   "as it was (docstrings are the specification)")
    lost_by_module: dict[str, list[LostName]] = {}
    for lost in lost_names(python, {c.path: c.content for c in accepted}):
        lost_by_module.setdefault(lost.module, []).append(lost)
    for rel, lost_here in lost_by_module.items():
        change = next(c for c in accepted if c.path == rel)
        fixed = restore(python[rel], change.content, [x.name for x in lost_here])
        if fixed is None:
            it.rejected.extend(x.describe() for x in lost_here)
            accepted.remove(change)
        else:
            change.content = fixed
            it.repaired.extend(x.restored() for x in lost_here)
    findings = review({c.path: c.content for c in accepted})
    it.findings = [f.describe() for f in findings]
    for finding in findings:
        if finding.needs is None:
            continue
        decision = approval.ask(agent.decider, approval.Request(
            run.id, finding.needs, finding.describe()), agent.runtime.trace)
        if not decision.allowed:
            it.rejected.append(f"{finding.describe()}: not approved ({decision.reason})")
            accepted = [c for c in accepted if c.path != finding.file]
    return accepted


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _tried(agent: Agent, run: Run, number: int) -> dict[str, set[str]]:
    """{path: digests of the contents earlier iterations proposed for it}."""
    seen: dict[str, set[str]] = {}
    for earlier in range(1, number):
        try:
            changes = agent.proposals.get(f"{run.id}:{earlier}").value.changes
        except RecordNotFoundError:
            continue
        for change in changes:
            seen.setdefault(change.path, set()).add(_digest(change.content))
    return seen


def repeats(proposed: list[FileChange], current: dict[str, str],
            seen: dict[str, set[str]]) -> bool:
    """Whether ``proposed`` only brings back code already there or already tried: every
    file is as it is now or as an earlier iteration proposed it."""
    return bool(proposed) and all(
        current.get(c.path) == c.content or _digest(c.content) in seen.get(c.path, set())
        for c in proposed)


def write(agent: Agent, run_id: str, number: int) -> Written:
    run = agent.run(run_id)
    ws = agent.workspace(run)
    it = Iteration(run_id=run_id, number=number)
    agent.notify(f"iteration {number}: " + (
        "writing the change" if number == 1 else "starting over from the files as they were"
        if number in STARTS else "repairing what the tests showed"))
    started = time.perf_counter()
    params = sampling(EDIT_PARAMS.model_copy(update={"seed": run.task.seed}), number)
    messages = _messages(agent, run, number)
    edit, tokens, problem, reply = agent.ask_edit(run, messages, params)
    vetted = Iteration(run_id=run_id, number=number)
    proposed = _vet(agent, run, ws, edit, vetted) if edit is not None else []
    if number > 1:
        # A small model shown its own failed code and diagnosis copies them: 9 of 13 repairs
        # of a 14-task run were byte-identical to an earlier attempt, even sampled at 0.7.
        # Such a repair is not tested again; the model is told and asked for another.
        seen = _tried(agent, run, number)
        current = {c.path: ws.read(c.path) for c in proposed if c.path in set(ws.files())}
        for redraw in range(1, MAX_REDRAWS + 1):
            if edit is None or not repeats(proposed, current, seen):
                break
            it.rejected.append("the repair brought back code already tried; asked for "
                               "another")
            messages = [*messages, Message(role="assistant", content=reply),
                        Message(role="user", content=prompts.REDRAW)]
            again = params.model_copy(update={"temperature": REDRAW_TEMPERATURE,
                                              "seed": (params.seed or 0) + 1000 * redraw})
            edit, spent, problem, reply = agent.ask_edit(run, messages, again)
            tokens += spent
            vetted = Iteration(run_id=run_id, number=number)
            proposed = _vet(agent, run, ws, edit, vetted) if edit is not None else []
            current = {c.path: ws.read(c.path) for c in proposed if c.path in set(ws.files())}
    it.rejected += vetted.rejected
    it.repaired, it.findings = vetted.repaired, vetted.findings
    if edit is None:
        it.rejected.append(f"the model's edit could not be read: {problem}")
    else:
        stated = prompts.diagnosis(reply) if number > 1 else ""
        summary = stated or ("the change written directly" if number == 1 else
                             "a plain attempt from the task alone" if number == PLAIN_START
                             else "a fresh attempt from the files as they were"
                             if number in FRESH_STARTS else "a repair (no diagnosis stated)")
        it.plan = Plan(problem_type="other", summary=summary,
                       files=[c.path for c in edit.changes][:3])
        if stated:
            it.hypothesis = Hypothesis(text=stated[:reflection.TEXT_CHARS])
            run.hypotheses.append(reflection.Tried(iteration=number, text=it.hypothesis.text,
                                                   status="open"))
            agent.save(run)
    it.tokens, it.seconds = tokens, time.perf_counter() - started
    agent.put(it)
    agent.proposals.put(Proposal(changes=proposed), f"{run_id}:{number}")
    return Written(len(proposed), tokens)


def apply(agent: Agent, run_id: str, number: int) -> Applied:
    run = agent.run(run_id)
    ws = agent.workspace(run)
    ws.discard()  # what a step killed half-way left behind
    it = agent.iteration(run_id, number)
    try:
        changes = agent.proposals.get(f"{run_id}:{number}").value.changes
    except RecordNotFoundError:  # the write step wrote nothing (no plan)
        changes = []
    before = ws.commit("(nothing pending)")
    it.parent = before
    it.changed = [c.path for c in changes if ws.write(c.path, c.content)]
    summary = it.plan.summary if it.plan else "no edit"
    it.commit = ws.commit(f"iteration {number}: {summary}"[:200])
    it.diff = ws.diff(before) if it.changed else ""
    agent.put(it)
    return Applied(len(it.changed), it.commit)


def test(agent: Agent, run_id: str, number: int) -> Outcome:
    """The tests on iteration ``number``'s change, as the breaker weighs them (the tokens
    are the iteration's plan and write so far; the loop adds the reflection's)."""
    run = agent.run(run_id)
    it = agent.iteration(run_id, number)
    agent.notify(f"iteration {number}: testing")
    started = time.perf_counter()
    report = agent.test(run)
    _report_into(it, report)
    if not it.changed and not it.ok:
        it.signature_key = it.signature_key or "no-change"
    it.seconds += time.perf_counter() - started
    agent.put(it)
    previous = standing(run, agent.history(run_id, number)).passed
    ledger = run.hypotheses
    if ledger and ledger[-1].status == "open" and ledger[-1].iteration == number:
        ledger[-1] = reflection.judge(ledger[-1], previous, it.passed, it.ok)
        agent.save(run)
    return Outcome(it.passed, it.ok, it.failure_key, it.tokens, it.seconds)


def undo(agent: Agent, run_id: str, number: int) -> bool:
    """Roll the working copy back to where iteration ``number`` started if its change made
    the tests worse, so the next iteration (and ``code diff``/``apply``) build on the best
    state rather than on a broken one. A step of its own: resetting to a fixed commit is
    safe to repeat after a kill, and the test step never sees a half-undone tree."""
    run = agent.run(run_id)
    it = agent.iteration(run_id, number)
    why = worse(it, standing(run, agent.history(run_id, number)))
    if why and it.parent is not None and it.changed:
        agent.workspace(run).reset(it.parent)
        it.undone = why
        agent.put(it)
        agent.notify(f"iteration {number}: undone, {why}")
    return bool(it.undone)


def _learn(agent: Agent, run: Run, iterations: list[Iteration]) -> None:
    """A solved run's change, when its tests were evidence enough; for each error that went
    away, the diagnosis that removed it."""
    if run.status == "solved" and run.checks >= MIN_CHECKS and run.key:
        diff = agent.workspace(run).diff()
        if diff:
            agent.memory.learn_pattern(run.task.description, run.key, diff)
    for before, after in itertools.pairwise(iterations):
        if before.undone:  # its error went away by the rollback, not by the next change
            continue
        if before.signature and before.signature_key != after.signature_key and \
                (after.ok or after.passed > before.passed):
            sig = signature_of(before.test_tail)
            if sig is not None and after.hypothesis is not None:
                agent.memory.learn_fix(sig, after.hypothesis.text, run.key)


def finish(agent: Agent, run_id: str, reason: str, detail: str) -> Finished:
    run = agent.run(run_id)
    run.status = "solved" if reason == "solved" else ("failed" if reason == "tests-hang"
                                                       else "stopped")
    run.stop_reason, run.stop_detail, run.ended_at = reason, detail, agent.clock()
    iterations = agent.history(run_id, run.iterations + 1)
    agent.save(run)
    if run.task.memory:
        _learn(agent, run, iterations)
    agent.notify(f"{run.status}: {detail}")
    return Finished(run.status)


def count(agent: Agent, run_id: str, number: int) -> None:
    run = agent.run(run_id)
    if run.iterations < number:
        run.iterations = number
        agent.save(run)


# -- the durable workflow ------------------------------------------------------------------

@DBOS.dbos_class()
class AgentLoop(DBOSConfiguredInstance):
    """One run's loop as a DBOS workflow on one agent.

    The instance is named after the run: DBOS records that name with the workflow and, when
    ``smallhold code resume`` recovers the run, calls the steps on the instance of that
    name, which :func:`execute` has just built from the resuming process's home.
    """

    def __init__(self, agent: Agent, run_id: str) -> None:
        self.agent = agent
        super().__init__(run_id)

    @DBOS.step()
    def baseline_step(self, run_id: str) -> Baseline:
        return baseline(self.agent, run_id)

    @DBOS.step()
    def write_step(self, run_id: str, number: int) -> Written:
        return write(self.agent, run_id, number)

    @DBOS.step()
    def apply_step(self, run_id: str, number: int) -> Applied:
        return apply(self.agent, run_id, number)

    @DBOS.step()
    def test_step(self, run_id: str, number: int) -> Outcome:
        return test(self.agent, run_id, number)

    @DBOS.step()
    def undo_step(self, run_id: str, number: int) -> bool:
        return undo(self.agent, run_id, number)

    @DBOS.step()
    def finish_step(self, run_id: str, reason: str, detail: str) -> Finished:
        return finish(self.agent, run_id, reason, detail)

    @DBOS.step()
    def count_step(self, run_id: str, number: int) -> None:
        count(self.agent, run_id, number)

    @DBOS.workflow()
    def loop(self, run_id: str) -> Finished:
        task = self.agent.run(run_id).task
        budget = Budget(max_iterations=task.max_iterations, tokens=task.token_budget,
                        seconds=task.seconds_budget)
        base = self.baseline_step(run_id)
        if base.timed_out:
            return self.finish_step(run_id, "tests-hang", "the project's tests did not "
                                    f"finish within {task.timeout_s:.0f} s before any "
                                    "change; fix the hang or raise --timeout")
        outcomes: list[Outcome] = []
        stop: Stop | None = None
        for number in range(1, task.max_iterations + 1):
            self.write_step(run_id, number)
            self.apply_step(run_id, number)
            tested = self.test_step(run_id, number)
            outcomes.append(tested)
            if not tested.ok:
                self.undo_step(run_id, number)
            self.count_step(run_id, number)
            stop = should_stop(outcomes, budget, baseline_passed=base.passed,
                               start_ahead=any(number < n <= budget.max_iterations
                                               for n in STARTS))
            if stop is not None:
                break
        if stop is None:
            stop = Stop("iterations", f"{len(outcomes)} iterations without passing")
        return self.finish_step(run_id, stop.reason, stop.detail)


def execute(agent: Agent, run_id: str, *, resume: bool = False) -> Run:
    """Run (or resume) ``run_id`` to its end in this process; returns the final record.

    DBOS is launched as executor ``run_id`` on the agent's home: a fresh run has nothing to
    recover, and a resumed one is recovered by the launch itself (its pending workflow, on
    the :class:`AgentLoop` registered under the run's name just before), which we then wait
    for. A run that failed with an error is resumed explicitly.
    """
    run = agent.run(run_id)
    if resume and run.status != "running":
        return run
    if run.format != LOOP_FORMAT:
        raise RunFormatError(
            f"run {run_id} was started by an older smallhold (loop format {run.format}) and "
            f"cannot be resumed by this one; `smallhold code diff {run_id}` still shows what "
            "it did, or start the task again.")
    if agent.home is None:
        raise ConfigError("this agent has no home to launch durable runs on; build it "
                          "with Agent.on(home)")
    loop = AgentLoop(agent, run_id)
    try:
        with agent.home.durable(run_id):
            status = DBOS.get_workflow_status(run_id)
            if status is None:
                with SetWorkflowID(run_id):
                    loop.loop(run_id)
            else:
                if status.app_version not in (None, durable.WORKFLOW_VERSION):
                    raise RunFormatError(
                        f"run {run_id} was started by an older smallhold ({status.app_version}"
                        f") and cannot be resumed by this one; `smallhold code diff {run_id}`"
                        " still shows what it did, or start the task again.")
                if status.status in ("ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"):
                    DBOS.resume_workflow(run_id)
                DBOS.retrieve_workflow(run_id).get_result()
    finally:
        durable.release(loop)
    return agent.run(run_id)
