"""Pure parts of the agent: signatures, the circuit breaker, hypotheses, static review."""

from __future__ import annotations

from smallhold.apps.code.agent import standing, worse
from smallhold.apps.code.breaker import Budget, Outcome, should_stop
from smallhold.apps.code.models import Iteration, Run, Task
from smallhold.apps.code.reflection import Hypothesis, Reflection, Tried, choose, judge
from smallhold.apps.code.safety import ast_findings, review
from smallhold.apps.code.signatures import signature_of, template

TRACE_A = '''Traceback (most recent call last):
  File "/home/ann/proj/app.py", line 12, in <module>
    main()
  File "/home/ann/proj/app.py", line 9, in main
    parse("x")
  File "/home/ann/proj/parser.py", line 41, in parse
    raise ValueError(f"bad token 'x' at 3")
ValueError: bad token 'x' at 3
'''
TRACE_B = TRACE_A.replace("/home/ann/proj", "/srv/other").replace("line 41", "line 77") \
    .replace("'x' at 3", "'yy' at 19")
PYTEST = '''F.                                                                       [100%]
=================================== FAILURES ===================================
___________________________________ test_sub ___________________________________
tests/test_calc.py:7: in test_sub
    assert evaluate("8 - 3 - 2") == 3
E   assert 7 == 3
E    +  where 7 = evaluate('8 - 3 - 2')
=========================== short test summary info ============================
FAILED tests/test_calc.py::test_sub - assert 7 == 3
1 failed, 1 passed in 0.03s
'''


def test_signature_ignores_paths_lines_and_values() -> None:
    a, b = signature_of(TRACE_A), signature_of(TRACE_B)
    assert a is not None and b is not None
    assert a.key == b.key
    assert a.exception == "ValueError" and a.frames == ("main", "parse")
    assert "/home" not in a.text and "41" not in a.text


def test_different_failures_have_different_signatures() -> None:
    a = signature_of(TRACE_A)
    c = signature_of(TRACE_A.replace("ValueError: bad", "KeyError: bad"))
    assert a is not None and c is not None and a.key != c.key


def test_pytest_assertion_signature() -> None:
    sig = signature_of(PYTEST)
    assert sig is not None
    assert sig.exception == "AssertionError" and sig.message == "assert <N> == <N>"
    assert sig.frames == ("test_sub",)
    assert signature_of("all good\n") is None
    assert template("at 0x7f3a /tmp/x.py 'abc' 12.5") == "at <ADDR> <PATH> <STR> <N>"


def outcome(passed: int, sig: str | None = "s1", ok: bool = False, tokens: int = 10) -> Outcome:
    return Outcome(passed=passed, ok=ok, signature=sig, tokens=tokens, seconds=1.0)


def test_breaker_reasons() -> None:
    budget = Budget(max_iterations=5, same_failure=3, no_progress=3, tokens=1000)
    assert should_stop([], budget) is None
    assert should_stop([outcome(1)], budget) is None
    stop = should_stop([outcome(3, None, ok=True)], budget)
    assert stop is not None and stop.reason == "solved"
    stop = should_stop([outcome(1), outcome(2), outcome(2)], budget)
    assert stop is not None and stop.reason == "same-failure"
    stop = should_stop([outcome(2, "a"), outcome(2, "b"), outcome(1, "c")], budget,
                       baseline_passed=2)
    assert stop is not None and stop.reason == "no-progress"
    assert should_stop([outcome(1, "a"), outcome(2, "b"), outcome(3, "c")], budget) is None
    stop = should_stop([outcome(1, "a", tokens=600), outcome(2, "b", tokens=600)], budget)
    assert stop is not None and stop.reason == "tokens"
    many = [outcome(i, str(i)) for i in range(5)]
    stop = should_stop(many, budget)
    assert stop is not None and stop.reason == "iterations"


def test_a_start_ahead_keeps_a_stuck_loop_going_but_not_past_its_budgets() -> None:
    budget = Budget(max_iterations=5, same_failure=3, no_progress=3, tokens=1000)
    stuck = [outcome(1), outcome(1), outcome(1)]
    assert should_stop(stuck, budget, start_ahead=True) is None
    stop = should_stop(stuck, budget)
    assert stop is not None and stop.reason == "same-failure"
    spent = [outcome(1, tokens=400)] * 3
    stop = should_stop(spent, budget, start_ahead=True)
    assert stop is not None and stop.reason == "tokens"


def test_refuted_hypotheses_are_not_chosen_again() -> None:
    reflection = Reflection(diagnosis="7 instead of 3", hypotheses=[
        Hypothesis(text="the parser groups subtraction from the right", confidence=0.9),
        Hypothesis(text="the tokenizer drops the minus sign", confidence=0.4)])
    first = choose(reflection, [])
    assert first is not None and "right" in first.text
    tried = judge(Tried(iteration=1, text=first.text, status="open"), 1, 1, ok=False)
    assert tried.status == "refuted"
    again = Reflection(diagnosis="same", hypotheses=[
        Hypothesis(text="The parser groups subtraction from the right!", confidence=0.95),
        Hypothesis(text="the tokenizer drops the minus sign", confidence=0.4)])
    second = choose(again, [tried])
    assert second is not None and "tokenizer" in second.text
    assert judge(Tried(iteration=2, text=second.text, status="open"), 1, 2, ok=False).status \
        == "supported"


def test_a_reflection_keeps_one_wording_of_each_idea() -> None:
    reflection = Reflection(diagnosis="7 instead of 3", hypotheses=[
        Hypothesis(text="the parser groups subtraction from the right", confidence=0.6),
        Hypothesis(text="The parser groups subtraction from the right.", confidence=0.9),
        Hypothesis(text="the tokenizer drops the minus sign", confidence=0.4)])
    assert [h.confidence for h in reflection.hypotheses] == [0.6, 0.4]


def test_reflection_bounds_are_in_the_schema_and_old_records_still_load() -> None:
    schema = Reflection.model_json_schema()
    assert schema["properties"]["hypotheses"]["maxItems"] == 3
    assert schema["properties"]["diagnosis"]["maxLength"] == 300
    assert schema["$defs"]["Hypothesis"]["properties"]["text"]["maxLength"] == 300
    old = Reflection.model_validate({"diagnosis": "x" * 1000, "hypotheses": [
        {"text": f"idea number {i} " + "y" * 500, "confidence": 0.5} for i in range(4)]})
    assert len(old.diagnosis) == 300 and len(old.hypotheses) <= 3
    assert all(len(h.text) <= 300 for h in old.hypotheses)


def test_static_review_flags_dangerous_operations() -> None:
    code = '''import os, shutil, subprocess, socket
def clean():
    shutil.rmtree("/home/user")
    subprocess.run("ls " + name, shell=True)
    eval(input())
    open("~/.ssh/authorized_keys", "a").write("key")
    os.remove("../other/file")
KEY = "AKIAABCDEFGHIJKLMNOP"
'''
    rules = {f.rule for f in ast_findings("evil.py", code)}
    assert {"SH-NET", "SH-DELETE", "SH-SHELL", "SH-EVAL", "SH-CRED"} <= rules
    needs = {f.needs for f in ast_findings("evil.py", code)}
    assert {"network", "outside"} <= needs
    assert ast_findings("ok.py", "def f(x):\n    return open('data.txt').read()\n") == []


def test_review_adds_ruff_security_rules() -> None:
    found = review({"a.py": "import pickle\ndef load(b):\n    return pickle.loads(b)\n",
                    "notes.md": "eval(x)"})
    assert any(f.rule.startswith("S3") for f in found)  # S301: pickle
    assert all(f.file == "a.py" for f in found)


def test_worse_means_fewer_passing_or_a_new_hang() -> None:
    run = Run(id="r", task=Task(description="t", project="/p", test_command=["pytest"],
                                python="python3"), workspace="/w", started_at=0.0,
              baseline_passed=3, baseline_summary="3 passed, 1 failed", baseline_tail="E x")
    now = standing(run, [])
    assert (now.passed, now.tail) == (3, "E x")
    fewer = Iteration(run_id="r", number=1, passed=0, failed=1, test_summary="1 error")
    same = Iteration(run_id="r", number=1, passed=3, failed=2, test_summary="3 passed, 2 failed")
    hang = Iteration(run_id="r", number=1, passed=3, signature_key="timeout")
    assert worse(fewer, now) == "0 test(s) passed, 3 before"
    assert worse(same, now) == ""  # a new failing test can be a step toward the fix
    assert worse(hang, now) == "the tests no longer finish"
    fewer.undone = worse(fewer, now)
    assert standing(run, [fewer]) == now  # an undone iteration leaves the standing as it was
    assert standing(run, [fewer, same]).passed == 3 and standing(run, [same]).summary == \
        "3 passed, 2 failed"
