"""The edit format: fenced files read back from the ways models actually write them."""

from __future__ import annotations

import pytest

from smallhold.apps.code.edits import INSTRUCTIONS, EditFormatError, parse_edit, render_edit
from smallhold.apps.code.models import Edit, FileChange

TRICKY = 'def f(s):\n\treturn s.replace("\\n", "\\\\") + \'"\'  # tab, quotes, backslashes\n'


def files(text: str) -> dict[str, str]:
    return {c.path: c.content for c in parse_edit(text).changes}


@pytest.mark.parametrize("header", [
    "FILE: pkg/calc.py", "File: `pkg/calc.py`", "### pkg/calc.py", "**pkg/calc.py**",
    "`pkg/calc.py`:", "pkg/calc.py:", "## ./pkg/calc.py",
])
def test_the_ways_models_name_a_file(header: str) -> None:
    reply = f"Sure, here it is.\n\n{header}\n```python\ndef add(a, b):\n    return a + b\n```\n"
    assert files(reply) == {"pkg/calc.py": "def add(a, b):\n    return a + b\n"}


def test_name_in_the_first_line_or_the_info_string() -> None:
    assert files("```python\n# calc.py\nX = 1\n```") == {"calc.py": "X = 1\n"}
    assert files("```python calc.py\nX = 1\n```") == {"calc.py": "X = 1\n"}
    assert files("```calc.py\nX = 1\n```") == {"calc.py": "X = 1\n"}


@pytest.mark.parametrize("lead_in", [
    "Corrected solution.py", "Here is the updated `solution.py`:", "The new solution.py:",
])
def test_a_short_line_naming_the_file_right_above_its_block(lead_in: str) -> None:
    assert files(f"Diagnosis: off by one.\n\n{lead_in}\n```python\nX = 1\n```") == \
        {"solution.py": "X = 1\n"}


def test_prose_naming_a_file_above_a_block_in_another_language_is_no_edit() -> None:
    with pytest.raises(EditFormatError, match="no file names"):
        parse_edit("Then run tests/test_calc.py:\n```bash\npytest -q\n```")
    with pytest.raises(EditFormatError, match="no file names"):  # a paragraph, not a lead-in
        parse_edit("The function in solution.py returns the wrong value when the list is "
                   "empty, and it also fails for negative numbers as in solution.py\n"
                   "```python\nX = 1\n```")


def test_several_files_prose_between_and_content_kept_verbatim() -> None:
    reply = (f"FILE: a.py\nThe fix keeps the escapes:\n```python\n{TRICKY}```\n\nAnd the test:\n"
             "FILE: tests/test_a.py\n~~~\nfrom a import f\n~~~\n")
    assert files(reply) == {"a.py": TRICKY, "tests/test_a.py": "from a import f\n"}


def test_a_longer_fence_holds_a_markdown_file_with_fences() -> None:
    reply = "FILE: README.md\n````markdown\n# Use\n```sh\nrun\n```\n````\n"
    assert files(reply) == {"README.md": "# Use\n```sh\nrun\n```\n"}


def test_a_file_given_twice_keeps_the_last_version() -> None:
    assert files("FILE: a.py\n```\nX = 1\n```\nFILE: a.py\n```\nX = 2\n```") == {"a.py": "X = 2\n"}


def test_an_indented_block_is_dedented_by_its_fence() -> None:
    assert files("1. FILE: a.py\n   ```python\n   def f():\n       pass\n   ```") == \
        {"a.py": "def f():\n    pass\n"}


@pytest.mark.parametrize(("reply", "says"), [
    ("I would change add to return a + b.", "no code block"),
    ("```python\nX = 1\n```", "no file names"),
    ("FILE: a.py\n```python\nX = 1\n", "never closed"),
    ("".join(f"FILE: f{i}.py\n```\nX = {i}\n```\n" for i in range(6)), "at most 5"),
])
def test_unreadable_replies_say_what_to_fix(reply: str, says: str) -> None:
    with pytest.raises(EditFormatError, match=says):
        parse_edit(reply)


def test_render_then_parse_is_the_same_edit() -> None:
    edit = Edit(changes=[FileChange(path="a.py", content=TRICKY),
                         FileChange(path="b/c.txt", content="one\ntwo\n")])
    assert parse_edit(render_edit(edit)) == edit


def test_the_instructions_example_copied_back_is_no_edit() -> None:
    with pytest.raises(EditFormatError):
        parse_edit(INSTRUCTIONS)
