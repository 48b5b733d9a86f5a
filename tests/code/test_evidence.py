"""What the repair prompt reads: explained failures, kept docstrings, what a task tests."""

from __future__ import annotations

from pathlib import Path

from smallhold.apps.code.docstrings import keep_docstrings, restore_docstrings
from smallhold.apps.code.evidence import explain, failures
from smallhold.apps.code.memory import checks, task_key

DATA = Path(__file__).parent / "data"


def test_a_failed_comparison_says_what_came_back_and_what_was_expected() -> None:
    text = explain((DATA / "pytest_short_failures.txt").read_text(), limit=3)
    assert ("similar_elements((3, 4, 5, 6), (5, 7, 4, 10)) returned (5, 4); the test "
            "expects (4, 5).") in text
    # a builtin around the call is part of the computed side, not the expected one
    assert "set(similar_elements((1, 2), (2, 3))) returned {2}; the test expects {3}." in text


def test_an_exception_names_the_project_line_that_raised_it() -> None:
    text = explain((DATA / "pytest_short_failures.txt").read_text(), limit=3)
    assert "raised in solution.py:5 (first):  return x[0]" in text
    assert "TypeError: 'int' object is not subscriptable" in text
    cli = explain((DATA / "pytest_short_stderr.txt").read_text())
    # the deepest frame of the project, not argparse's sys.exit in the standard library
    assert "raised in todo/cli.py:31 (main)" in cli and "argparse" not in cli
    assert "unrecognized arguments: --json" in cli  # what the test wrote to stderr
    assert "(and 1 more failing)" in cli


def test_output_without_failures_explains_nothing() -> None:
    assert explain("3 passed in 0.01s") == ""
    assert failures("ERROR: file or directory not found: tests\n") == []


def test_a_comparison_of_two_computed_sides_is_left_as_pytest_said_it() -> None:
    output = ("=== FAILURES ===\n___ test_x ___\ntests/t.py:3: in test_x\n"
              "    assert f(1) == g(1)\nE   assert 2 == 3\n")
    text = explain(output)
    assert "returned" not in text and "assert 2 == 3" in text


def test_changed_docstrings_are_put_back_and_new_code_is_kept() -> None:
    old = ('"""Module spec.\n\nassert f(3) == True\n"""\n\n\ndef f(x) -> bool:\n'
           '    """Is x odd?\n\n    >>> f(3)\n    True\n    """\n    raise NotImplementedError\n')
    new = ('"""Module spec.\n\nassert f(3) == [3]\n"""\n\n\ndef f(x) -> bool:\n'
           '    """Split.\n\n    >>> f(3)\n    [3]\n    """\n    return x % 2 == 1\n\n\n'
           'def helper():\n    """Anything goes here."""\n')
    fixed, names = keep_docstrings(old, new)
    assert names == ["<module>", "f"]
    assert "assert f(3) == True" in fixed and ">>> f(3)\n    True" in fixed
    assert "return x % 2 == 1" in fixed and "Anything goes here." in fixed
    assert keep_docstrings(old, old) == (old, [])
    assert keep_docstrings(old, "def f(:\n") == ("def f(:\n", [])  # the tests will say why


def test_a_docstring_follows_its_function_to_another_indentation() -> None:
    old = 'def f():\n    """One.\n\n    Two.\n    """\n'
    new = 'class A:\n    def f(self):\n        """Changed."""\n        return 1\n'
    fixed, names = keep_docstrings(old, new)
    assert names == []  # A.f is not f: a different definition, nothing to put back
    moved = 'if True:\n    def f():\n        """Changed.\n\n        Three.\n        """\n'
    assert keep_docstrings(old, moved)[1] == []  # not a top-level f either
    nested_old = 'class A:\n    def f(self):\n        """One.\n\n        Two.\n        """\n'
    fixed, names = keep_docstrings(nested_old, new)
    assert names == ["A.f"] and '"""One.\n\n        Two.\n        """' in fixed


def test_docstrings_left_out_of_a_rewrite_are_put_back_where_they_belong() -> None:
    old = ('def f(x):\n    """Is x odd?\n\n    >>> f(3)\n    True\n    """\n'
           '    raise NotImplementedError\n\n\nclass A:\n    """A thing."""\n\n'
           '    def m(self):\n        """One.\n\n        Two.\n        """\n        return 1\n')
    new = ('def f(x):\n    # odd\n    return x % 2 == 1\n\n\nclass A:\n    def m(self):\n'
           '        return 2\n\n\ndef g(): return 3\n')
    fixed = restore_docstrings(old, new)
    assert fixed.startswith('def f(x):\n    """Is x odd?\n\n    >>> f(3)\n    True\n    """\n'
                            '    # odd\n    return x % 2 == 1\n')
    assert 'class A:\n    """A thing."""\n    def m(self):\n        """One.\n\n        Two.\n' \
        '        """\n        return 2\n' in fixed
    assert restore_docstrings(old, old) == old and restore_docstrings(old, "def f(:\n") == \
        "def f(:\n"
    moved = "class B:\n    def f(self):\n        return 1\n"  # B.f is not f
    assert restore_docstrings(old, moved) == moved
    one_line = "def f(x): return x % 2 == 1\n"
    assert restore_docstrings(old, one_line) == one_line
    decorated = "class A:\n    @property\n    def m(self):\n        return 2\n"
    assert restore_docstrings(old, decorated) == (
        'class A:\n    """A thing."""\n    @property\n    def m(self):\n'
        '        """One.\n\n        Two.\n        """\n        return 2\n')


def test_the_task_key_is_what_the_tests_call_not_how_the_request_is_worded() -> None:
    one = {"tests/test_a.py": "from solution import *\n\ndef test_x():\n"
                              "    assert set(similar(1, 2)) == set((1,))\n"}
    same = {"tests/test_b.py": "def test_y():\n    assert similar(3, 4) == 5\n"}
    other = {"tests/test_a.py": "def test_x():\n    assert is_prime(3)\n"}
    assert task_key(one) == task_key(same) != task_key(other)
    assert task_key({"t.py": "def f(:"}) == task_key({})  # unparsable tests call nothing


def test_checks_count_asserts_raises_and_parametrised_cases() -> None:
    source = ("import pytest\n\n@pytest.mark.parametrize('x', [1, 2, 3])\ndef test_p(x):\n"
              "    assert x\n\ndef test_r():\n    with pytest.raises(ValueError):\n"
              "        int('x')\n    assert True\n\ndef helper():\n    assert False\n")
    assert checks({"tests/test_x.py": source}) == 3 + 2
    assert checks({"tests/test_y.py": "def test_one():\n    assert f() == 1\n"}) == 1


def test_a_baseline_that_only_misses_the_code_is_one_line() -> None:
    from smallhold.apps.code.prompts import baseline_output

    missing = ("Failing test: test_examples\n  tests/test_public.py:5:  assert f(1) == 2\n"
               "    NameError: name 'f' is not defined")
    assert baseline_output("0 passed, 1 failed", missing, "tail") == (
        "they fail because what they call is not written yet (NameError: name 'f' is not "
        "defined)")
    wrong = ("Failing test: test_add\n  t.py:3:  assert add(2, 3) == 5\n"
             "  add(2, 3) returned -1; the test expects 5.")
    assert "returned -1" in baseline_output("0 passed, 1 failed", wrong, "tail")


def test_an_identity_check_says_what_came_back_too() -> None:
    output = ("=== FAILURES ===\n___ test_debug_off[false] ___\ntests/test_loader.py:36: in "
              "test_debug_off\n    assert load(environ={'APP_DEBUG': text}).debug is False\n"
              "E   AssertionError: assert True is False\n"
              "E    +  where True = Config(debug=True).debug\n")
    text = explain(output)
    assert "load(environ={'APP_DEBUG': text}).debug returned True; the test expects False." \
        in text
    negated = output.replace("is False", "is not False").replace("True is", "False is not")
    assert "returned" not in explain(negated)
