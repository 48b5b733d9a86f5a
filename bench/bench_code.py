"""The coding agent on MBPP+ and the repo tasks: single shot vs the loop, memory, containment.

For each MBPP+ task a small project is built: ``solution.py`` holding the task's prompt (a
docstring and one example) and ``tests/test_public.py`` with the original MBPP asserts. The
agent sees and runs only those public tests; the hidden MBPP+ tests (``test``, about 35x
more inputs) judge the result through ``../shared/data/coding/check.py``. Single shot is one
model call writing ``solution.py`` from the same prompt, judged the same way.

Failure memory: the loop is run over the tasks twice in one profile, so the second pass can
use the success patterns and error fixes the first one stored. Repo tasks run the loop on a
copy of each project with its editable files; a digest of the project (and of a file beside
it) before and after shows that nothing outside the agent's working copy was touched.

    .venv/bin/python bench/bench_code.py --tasks 10 --iterations 5

Runs take hours on two cores, so they are resumable: each task's result is appended to a
journal (``bench/results/code-<label>.jsonl``) as soon as it is known, and the profile the
loop learns in lives beside it (``code-<label>-home/``), so a rerun with the same ``--label``
skips what is done and continues with the same memories. ``--fresh`` starts the label over.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import _common as common
from _common import fmt, log, md_table

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coding"
PUBLISHED = {  # Qwen2.5-Coder technical report (arXiv 2409.12186), instruct models, MBPP+
    "qwen2.5-coder-1.5b-instruct": 59.4,
}


def load_mbpp(count: int) -> list[dict[str, Any]]:
    with gzip.open(DATA / "mbppplus.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return rows[:count]


def mbpp_project(task: dict[str, Any], root: Path) -> Path:
    project = root / task["task_id"].replace("/", "-")
    (project / "tests").mkdir(parents=True)
    prompt = task["prompt"].strip()  # MBPP+ prompts are docstrings already
    if not prompt.startswith('"""'):
        prompt = f'"""\n{prompt}\n"""'
    (project / "solution.py").write_text(prompt + "\n")
    asserts = "\n".join("    " + line for line in task["test_base"].strip().splitlines())
    (project / "tests" / "test_public.py").write_text(
        f"from solution import *  # noqa: F403\n\n\ndef test_examples():\n{asserts}\n")
    # only test_examples is a test: the star import also brings in the function under test,
    # and pytest collected one named test_duplicate (Mbpp/19) as a test wanting a fixture
    (project / "pyproject.toml").write_text('[tool.pytest.ini_options]\npythonpath = ["."]\n'
                                            'python_functions = ["test_examples"]\n')
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "-c", "user.email=bench@localhost", "-c", "user.name=bench",
                    "commit", "-qm", "task"], cwd=project, check=True)
    return project


def mbpp_request(task: dict[str, Any]) -> str:
    """What a user would type for the task: its statement, where the code goes, and that
    the tests are examples (every task saying the same words made each success pattern
    look like a match for every other task)."""
    statement = next(line for line in task["prompt"].strip().strip('"').splitlines()
                     if line.strip())
    return (f"{statement.strip()} Write it in solution.py, correct for every input the "
            "statement allows; tests/test_public.py has a few examples.")


def project_python(spec: str) -> str:
    """The interpreter the projects' tests run on. ``bench`` is this one, with every plugin
    the smallhold venv carries (anyio, timeout, ...: about a second of pytest start-up on two
    cores, twice a task); ``pytest`` is a venv beside the results holding only pytest, made
    on first use, as an MBPP-sized project's own environment would be; else a path."""
    if spec == "bench":
        return sys.executable
    if spec != "pytest":
        return spec
    venv = common.RESULTS_DIR / "project-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        import importlib.metadata

        log(f"making {venv} (pytest only) for the projects' tests")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        f"pytest=={importlib.metadata.version('pytest')}"], check=True)
    return str(python)


def hidden_check(task: dict[str, Any], code: str) -> bool:
    sys.path.insert(0, str(DATA))
    try:
        import check  # the reference checker of the shared data

        return bool(check.run_candidate(task, code)["passed"])
    finally:
        sys.path.remove(str(DATA))


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and ".git" not in p.parts:
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()[:16]


class _LogIO:
    """The bench's user seam: progress goes to its log; nobody approves anything."""

    interactive = False

    def confirm(self, question: str) -> bool:
        return False

    def notify(self, message: str) -> None:
        log(f"    {message}")


@contextmanager
def agent_for(model: str) -> Iterator[Any]:
    """The agent exactly as ``smallhold code`` builds it: on the default profile's home."""
    from smallhold.apps.code import APP
    from smallhold.apps.code.agent import Agent
    from smallhold.kit import Home, Overrides

    with Home.open("default", app=APP, overrides=Overrides(io=_LogIO())) as home:
        yield Agent.on(home)


def warm(agent: Any, model: str) -> None:
    """Load the model before anything is timed: otherwise the first task's single shot
    carries the model's load, and the cost ratio with it."""
    from smallhold.runtime.types import GenerationParams, Message

    agent.runtime.chat([Message(role="user", content="hi")], model=model,
                       params=GenerationParams(max_tokens=1, temperature=0.0), app="code-bench")


def single_shot(agent: Any, task: dict[str, Any], model: str) -> dict[str, Any]:
    from smallhold.apps.code import edits
    from smallhold.apps.code.prompts import SYSTEM
    from smallhold.runtime.types import GenerationParams, Message

    prompt = (f"Task:\n{task['prompt'].strip()}\n\nWrite solution.py, a complete module that "
              f"does this. {edits.INSTRUCTIONS}")
    started = time.perf_counter()
    done = agent.runtime.chat([Message(role="system", content=SYSTEM),
                               Message(role="user", content=prompt)], model=model,
                              params=GenerationParams(max_tokens=1024, temperature=0.0, seed=7),
                              app="code-bench")
    seconds = time.perf_counter() - started
    try:
        code = edits.parse_edit(done.text).changes[0].content
    except edits.EditFormatError:
        code = done.text
    return {"passed": hidden_check(task, code), "seconds": seconds,
            "tokens": done.usage.prompt_tokens + done.usage.completion_tokens}


def loop(agent: Any, project: Path, description: str, model: str, iterations: int,
         editable: list[str] | None = None, timeout_s: float = 60, seed: int = 7,
         memory: bool = True, python: str = sys.executable) -> dict[str, Any]:
    from smallhold.apps.code.agent import execute
    from smallhold.apps.code.models import Task
    from smallhold.apps.code.testing import default_command

    task = Task(description=description, project=str(project),
                test_command=default_command(project, python), python=python,
                model=model, max_iterations=iterations, timeout_s=timeout_s, editable=editable,
                seed=seed, memory=memory)
    run = agent.create(task)
    started = time.perf_counter()
    done = execute(agent, run.id)
    seconds = time.perf_counter() - started
    history = agent.history(run.id, done.iterations + 1)
    tokens = sum(it.tokens for it in history)
    log(f"    -> {done.status} ({done.stop_reason}) after {done.iterations} iteration(s), "
        f"{tokens} tokens, {seconds:.0f} s")
    return {"run": run.id, "status": done.status, "reason": done.stop_reason,
            "iterations": done.iterations, "seconds": seconds,
            "tokens": tokens,
            "workspace": Path(done.workspace),
            "unreadable": sum(any("could not be read" in r for r in it.rejected)
                              for it in history)}


class Journal:
    """Results appended one JSON line per finished task, keyed by (phase, task): a rerun
    reads them back and does only what is missing. A line is written whole and flushed,
    so a run killed mid-task loses that task only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: dict[tuple[str, str], dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # the half-written last line of a killed run
                    continue
                self.done[(row["phase"], row["task"])] = row

    def get(self, phase: str, task: str) -> dict[str, Any] | None:
        return self.done.get((phase, task))

    def add(self, phase: str, task: str, result: dict[str, Any]) -> dict[str, Any]:
        row = {"phase": phase, "task": task, **result}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.done[(phase, task)] = row
        return row


def bench_mbpp(args: argparse.Namespace, root: Path, journal: Journal) -> dict[str, Any]:
    tasks = load_mbpp(args.tasks)
    if args.ids:
        wanted = set(args.ids.split(","))
        tasks = [t for t in tasks if t["task_id"] in wanted]
    shots: list[dict[str, Any]] = []
    passes: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    with agent_for(args.model) as agent:
        warm(agent, args.model)
        for number, task in enumerate(tasks, start=1):
            row = journal.get("single", task["task_id"])
            if row is None:
                log(f"[{number}/{len(tasks)}] {task['task_id']}: single shot")
                row = journal.add("single", task["task_id"],
                                  single_shot(agent, task, args.model))
            shots.append(row)
        phases = () if not args.loop else (1, 2) if args.second_pass else (1,)
        for phase in phases:
            for number, task in enumerate(tasks, start=1):
                row = journal.get(f"loop{phase}", task["task_id"])
                if row is None:
                    log(f"[{number}/{len(tasks)}] {task['task_id']}: loop, pass {phase}")
                    project = mbpp_project(task, root / f"pass{phase}")
                    result = loop(agent, project, mbpp_request(task), args.model,
                                  args.iterations, editable=["solution.py"], seed=args.seed,
                                  memory=args.memory, python=args.python)
                    code = (result.pop("workspace") / "solution.py").read_text()
                    result["hidden"] = result["status"] == "solved" and hidden_check(task, code)
                    row = journal.add(f"loop{phase}", task["task_id"], result)
                passes[phase].append(row)
    return {"single": shots, "loop": passes[1], "again": passes[2]}


def bench_repo(args: argparse.Namespace, root: Path, journal: Journal) -> list[dict[str, Any]]:
    results = []
    with agent_for(args.model) as agent:
        for folder in sorted((DATA / "repo_tasks").iterdir()):
            if not (folder / "task.json").exists():
                continue
            meta = json.loads((folder / "task.json").read_text())
            kept = journal.get("repo", meta["id"])
            if kept is not None:
                results.append(kept)
                continue
            project = root / "repo" / meta["id"]
            shutil.copytree(folder, project, ignore=shutil.ignore_patterns("task.json"))
            canary = root / "repo" / f"{meta['id']}.outside"
            canary.write_text("beside the project\n")
            subprocess.run(["git", "init", "-q"], cwd=project, check=True)
            before = (digest(project), canary.read_text())
            log(f"{meta['id']}: loop")
            result = loop(agent, project, meta["description"], args.model, args.iterations,
                          editable=meta.get("editable_files"),
                          timeout_s=float(meta.get("timeout_s", 60)), seed=args.seed,
                          memory=args.memory, python=args.python)
            result.pop("workspace")
            result["untouched"] = (digest(project), canary.read_text()) == before
            results.append(journal.add("repo", meta["id"], {"kind": meta["kind"], **result}))
    return results


def report(args: argparse.Namespace, info: dict[str, Any], mbpp: dict[str, Any] | None,
           repo: list[dict[str, Any]] | None) -> str:
    lines = ["### code: coding agent on MBPP+ and the repo tasks", "",
             f"Command: `{common.command_line()}`", "", *common.machine_lines(info, [
                 ("model", f"{args.model}, n_ctx 8192, temperature 0 (single shot, the "
                           "loop's first iteration and its plain start at 5), 0.7 (the loop's "
                           "repairs and fresh start; 1.0 when a repair repeats tried code)"),
                 ("projects' tests run on", args.project_python),
             ]), ""]
    if mbpp:
        n = len(mbpp["single"])
        shot = sum(r["passed"] for r in mbpp["single"])
        published = PUBLISHED.get(args.model)
        rows = [["single shot", f"{shot}/{n}", fmt(100 * shot / n, 0),
                 fmt(common.mean([r["tokens"] for r in mbpp["single"]]), 0),
                 fmt(common.mean([r["seconds"] for r in mbpp["single"]]), 1)]]
        for k in range(1, args.iterations + 1 if mbpp["loop"] else 1):
            solved = [r for r in mbpp["loop"] if r["hidden"] and r["iterations"] <= k]
            rows.append([f"loop, up to {k} iteration(s)", f"{len(solved)}/{n}",
                         fmt(100 * len(solved) / n, 0),
                         fmt(common.mean([r["tokens"] for r in solved]), 0) if solved else "—",
                         fmt(common.mean([r["seconds"] for r in solved]), 1) if solved else "—"])
        lines += [f"MBPP+ pass@1 on the first {n} tasks (hidden `test` inputs; the agent saw "
                  "only `test_base`). Published single-shot MBPP+ for this model: "
                  f"{published if published is not None else 'not published'}"
                  f"{'%' if published is not None else ''} (all 378 tasks, EvalPlus harness).",
                  "", md_table(["", "solved", "pass@1 %", "tokens per solved task",
                                "seconds per solved task"], rows), ""]
        low, high = wilson(shot, n)
        looped = sum(r["hidden"] for r in mbpp["loop"])
        loop_ci = ("loop " + "–".join(fmt(100 * b, 0) for b in wilson(looped, n)) + " %"
                   if mbpp["loop"] else "loop not run")
        lines += [f"95 % intervals (Wilson): single shot {fmt(100 * low, 0)}–"
                  f"{fmt(100 * high, 0)} %, {loop_ci}.", ""]
        shot_of: dict[str, bool] = {r["task"]: r["passed"] for r in mbpp["single"]}
        shot_by = {r["task"]: r for r in mbpp["single"]}
        differ = [[r["task"], "yes" if shot_of[r["task"]] else "no",
                   "yes" if r["hidden"] else "no", r["status"], r["iterations"]]
                  for r in mbpp["loop"] if bool(shot_of[r["task"]]) != bool(r["hidden"])]
        lines += [] if not mbpp["loop"] else [
                  f"Where they disagree ({len(differ)} task(s)): single shot solved "
                  f"{sum(1 for d in differ if d[1] == 'yes')} the loop missed, the loop "
                  f"{sum(1 for d in differ if d[2] == 'yes')} the single shot missed.", ""]
        if differ:
            lines += [md_table(["task", "single shot", "loop (hidden)", "loop status",
                                "iterations"], differ, "lllll"), ""]
        both = [(shot_by[r["task"]], r) for r in mbpp["loop"] if shot_of[r["task"]]]
        if both:
            ratio = sum(r["seconds"] for _, r in both) / sum(s["seconds"] for s, _ in both)
            median = sorted(r["seconds"] / s["seconds"] for s, r in both)[len(both) // 2]
            lines += [f"Cost on the {len(both)} tasks the single shot solved: the loop took "
                      f"{fmt(ratio, 2)}× its time in all (median {fmt(median, 2)}× a task), "
                      f"{fmt(common.mean([r['iterations'] for _, r in both]), 2)} iterations "
                      "on average.", ""]
        if mbpp["again"]:
            lines += passes_compared("the first pass", mbpp["loop"], "the second pass",
                                     mbpp["again"], "the same tasks again in the same profile, "
                                     "with what the first pass stored")
        if args.against:
            other = [r for r in Journal(common.RESULTS_DIR / f"code-{args.against}.jsonl")
                     .done.values() if r["phase"] == "loop1"]
            lines += passes_compared(f"`{args.label}`", mbpp["loop"], f"`{args.against}`",
                                     other, "the same tasks, the loop's first pass of each")
    if repo:
        rows = [[r["task"], r["kind"], r["status"], r["reason"], r["iterations"],
                 fmt(r["tokens"], 0), fmt(r["seconds"], 0),
                 "yes" if r["untouched"] else "**no**"] for r in repo]
        solved = sum(r["status"] == "solved" for r in repo)
        lines += [f"Repo tasks: {solved}/{len(repo)} solved.", "",
                  md_table(["task", "kind", "status", "stop", "iterations", "tokens", "seconds",
                            "project and its neighbour untouched"], rows, "llllrrrl"), ""]
    return "\n".join(lines)


def passes_compared(name: str, rows: list[dict[str, Any]], other_name: str,
                    other: list[dict[str, Any]], what: str) -> list[str]:
    """Two loop passes over the same tasks: pass@1 on the hidden inputs, time, and the tasks
    where they differ (memory on against off, or a second pass against the first)."""
    by_task = {r["task"]: r for r in other}
    pairs = [(r, by_task[r["task"]]) for r in rows if r["task"] in by_task]
    if not pairs:
        return [f"No task of {name} is in {other_name}'s journal.", ""]
    n = len(pairs)
    table = [[label, f"{sum(bool(x['hidden']) for x in side)}/{n}",
              fmt(common.mean([x["iterations"] for x in side]), 2),
              fmt(common.mean([x["seconds"] for x in side]), 1)]
             for label, side in ((name, [a for a, _ in pairs]),
                                 (other_name, [b for _, b in pairs]))]
    differ = [[a["task"], "yes" if a["hidden"] else "no", a["iterations"],
               "yes" if b["hidden"] else "no", b["iterations"]]
              for a, b in pairs if bool(a["hidden"]) != bool(b["hidden"])]
    lines = [f"{name} against {other_name} ({what}), on {n} tasks:", "",
             md_table(["", "solved (hidden)", "iterations per task", "seconds per task"],
                      table, "lrrr"), ""]
    if differ:
        lines += [f"Where they differ ({len(differ)} task(s)):", "",
                  md_table(["task", name, "iterations", other_name, "iterations"], differ,
                           "llrlr"), ""]
    return lines


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a pass rate: honest at 10 tasks, tight at 378."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--tasks", type=int, default=10, help="MBPP+ tasks (the first N)")
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--only", choices=["mbpp", "repo"])
    parser.add_argument("--seed", type=int, default=7,
                        help="seed of the loop's sampled repairs (another run: another seed)")
    parser.add_argument("--ids", help="only these MBPP+ task ids (comma-separated) of the "
                        "first --tasks: a change measured where it can matter")
    parser.add_argument("--no-memory", dest="memory", action="store_false",
                        help="the loop neither recalls nor learns (memory off)")
    parser.add_argument("--label", default="main", help="names the journal and the profile: "
                        "the same label resumes, another one starts a separate run")
    parser.add_argument("--fresh", action="store_true",
                        help="forget the label's journal and profile first")
    parser.add_argument("--no-second-pass", dest="second_pass", action="store_false",
                        help="skip the loop's second pass (memory) over the same tasks")
    parser.add_argument("--against", metavar="LABEL",
                        help="compare the loop's first pass with that of another label's "
                        "journal (memory on against --no-memory)")
    parser.add_argument("--no-loop", dest="loop", action="store_false",
                        help="only the single shot (a baseline for the loop's runs)")
    parser.add_argument("--project-python", default="bench", metavar="bench|pytest|PATH",
                        help="the interpreter the projects' tests run on: this venv (bench), "
                        "a venv with only pytest (pytest), or a path")
    args = parser.parse_args(argv)
    if not DATA.exists():
        parser.error(f"{DATA} is absent: the shared coding data lives beside the repo")
    info = common.machine()
    common.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    args.python = project_python(args.project_python)
    journal_path = common.RESULTS_DIR / f"code-{args.label}.jsonl"
    home = common.RESULTS_DIR / f"code-{args.label}-home"
    if args.fresh:
        journal_path.unlink(missing_ok=True)
        shutil.rmtree(home, ignore_errors=True)
    journal = Journal(journal_path)
    log(f"journal {journal_path}: {len(journal.done)} result(s) kept from earlier runs")
    from smallhold.paths import resolve_paths

    # the models already installed, not a second 1.1 GB copy inside the bench's profile
    os.environ.setdefault("SMALLHOLD_MODELS_DIR", str(resolve_paths().models_dir))
    with tempfile.TemporaryDirectory(prefix="smallhold-bench-code-") as tmp:
        root = Path(tmp)
        os.environ.setdefault("SMALLHOLD_HOME", str(home))  # kept: memories survive a rerun
        os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
        mbpp = bench_mbpp(args, root, journal) if args.only in (None, "mbpp") else None
        repo = bench_repo(args, root, journal) if args.only in (None, "repo") else None
    info["loadavg_end"] = list(os.getloadavg())
    markdown = report(args, info, mbpp, repo)
    print(markdown)
    name = f"code-{args.only}" if args.only else "code"  # a partial run keeps the other part
    common.write_results(name, {"machine": info, "args": vars(args), "mbpp": mbpp,
                                  "repo": repo}, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
