"""The coding agent's data: what the model returns, and what a run keeps in the vault."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from smallhold.apps.code.reflection import Hypothesis, Reflection, Tried

ProblemType = Literal["bugfix", "feature", "implement", "refactor", "tests", "other"]


class Plan(BaseModel):
    """The model's plan for one iteration (structured output)."""

    problem_type: ProblemType = Field(description="what kind of change the task is")
    summary: str = Field(description="the approach in one or two sentences")
    files: list[str] = Field(min_length=1, max_length=3,
                             description="project-relative paths of only the files this "
                                         "change edits or creates, usually one")


class FileChange(BaseModel):
    path: str = Field(description="project-relative path of the file")
    content: str = Field(description="the complete new content of the file")


class Edit(BaseModel):
    """The model's edit for one iteration (structured output): whole files, not patches,
    because a small model writes a whole short file more reliably than a valid diff."""

    changes: list[FileChange] = Field(min_length=1, max_length=5)


class Proposal(BaseModel):
    """The vetted changes of one iteration, kept between the write and apply steps."""

    changes: list[FileChange] = []


class Task(BaseModel):
    description: str
    project: str
    test_command: list[str]
    python: str
    model: str | None = None
    max_iterations: int = 5
    timeout_s: float = 120.0
    edit_tests: bool = False
    editable: list[str] | None = None
    network: bool = False
    seed: int = 7  # of the sampled repairs; the first attempt is greedy
    memory: bool = True  # recall hints for repairs and learn from the run
    token_budget: int = 200_000
    seconds_budget: float = 1800.0


class Iteration(BaseModel):
    run_id: str
    number: int
    plan: Plan | None = None
    changed: list[str] = []
    rejected: list[str] = []  # why proposed changes were not applied
    repaired: list[str] = []  # what was put back into a rewrite that left it out
    findings: list[str] = []
    parent: str | None = None  # the commit the change was made on
    commit: str | None = None
    undone: str = ""  # why the change was rolled back to ``parent``; empty if it was kept
    diff: str = ""
    passed: int = 0
    failed: int = 0
    ok: bool = False
    test_summary: str = ""
    test_tail: str = ""
    signature: str | None = None
    signature_key: str | None = None
    contained: list[str] = []
    explained: str = ""  # the failing checks, expected against actual (.evidence)
    failure_key: str | None = None  # the exact failure, for the breaker's "same failure"
    reflection: Reflection | None = None  # format 1 only: a reflection step of its own
    hypothesis: Hypothesis | None = None  # the diagnosis this iteration acted on
    tokens: int = 0
    seconds: float = 0.0


class Run(BaseModel):
    id: str
    task: Task
    workspace: str
    format: int = 1  # the loop's shape that started the run (agent.LOOP_FORMAT)
    key: str = ""  # what the tests ask of the code (memory.task_key), for recall
    checks: int = 0  # how many checks the tests hold: the evidence a success rests on
    status: Literal["running", "solved", "stopped", "failed"] = "running"
    stop_reason: str | None = None
    stop_detail: str | None = None
    baseline_passed: int = 0
    baseline_failed: int = 0
    baseline_summary: str = ""
    baseline_tail: str = ""  # the failures the first attempt starts from
    baseline_explained: str = ""
    iterations: int = 0
    hypotheses: list[Tried] = []
    started_at: float
    ended_at: float | None = None
