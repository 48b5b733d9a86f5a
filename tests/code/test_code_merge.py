"""A rewrite that leaves definitions out gets them back, where they stood."""

from __future__ import annotations

import ast
import textwrap

from smallhold.apps.code.merge import merge

PARSER = textwrap.dedent('''\
    """A small parser."""

    from __future__ import annotations

    import re

    from .errors import ParseError

    _PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


    # the entry point
    def parse(text):
        return Parser(tokens(text)).expression()


    def tokens(text):
        return re.findall(r"\\d+|[-+*/()]", text)


    class Parser:
        """Recursive descent."""

        def __init__(self, items):
            self.items = items

        def expression(self):
            return self.term()

        def term(self):
            if not self.items:
                raise ParseError("empty")
            return int(self.items.pop(0))


    if __name__ == "__main__":
        print(parse("1"))
    ''')


def _names(text: str) -> set[str]:
    tree = ast.parse(text)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            found.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.add(node.id)
        elif isinstance(node, ast.alias):
            found.add(node.asname or node.name)
    return found


def test_a_rewrite_of_one_method_keeps_the_rest_of_the_file() -> None:
    reply = textwrap.dedent('''\
        class Parser:
            def expression(self):
                value = self.term()
                while self.items and self.items[0] == "-":
                    self.items.pop(0)
                    value = value - self.term()
                return value
        ''')
    merged = merge(PARSER, reply)
    assert _names(PARSER) <= _names(merged.text)
    assert "value = value - self.term()" in merged.text
    assert merged.text.count("def expression") == 1
    assert {"__future__ import", "re", "ParseError", "_PRECEDENCE", "parse", "tokens",
            "Parser.__init__", "Parser.term", "__main__ guard"} <= set(merged.kept)
    # where they stood: imports above the table, the table above parse, parse above Parser,
    # __init__ above expression, term below it, the guard last
    text = merged.text
    order = [text.index(s) for s in ("import re", "_PRECEDENCE =", "def parse", "class Parser",
                                     "def __init__", "def expression", "def term",
                                     "__main__")]
    assert order == sorted(order)
    assert "# the entry point\ndef parse" in text  # a comment above travels with its def
    compile(text, "parser.py", "exec")


def test_what_the_rewrite_defines_wins() -> None:
    reply = PARSER.replace('"-": 1', '"-": 5').replace("return self.term()",
                                                       "return -self.term()")
    merged = merge(PARSER, reply)
    assert merged.text == reply  # a whole-file rewrite is taken as written
    assert merged.kept == [] and merged.elided == []


def test_a_function_written_as_dots_keeps_its_old_body() -> None:
    reply = textwrap.dedent('''\
        def parse(text):
            ...


        def tokens(text):
            return text.split()
        ''')
    merged = merge(PARSER, reply)
    assert "return Parser(tokens(text)).expression()" in merged.text
    assert "return text.split()" in merged.text
    assert merged.elided == ["parse"]
    assert merged.text.count("def parse") == 1


def test_a_stub_that_was_dots_before_is_not_an_elision() -> None:
    old = "def f():\n    ...\n\n\ndef g():\n    return 1\n"
    new = "def f():\n    ...\n"
    merged = merge(old, new)
    assert merged.elided == []
    assert "def g" in merged.text


def test_a_module_with_only_a_docstring_gets_the_new_code_below_it() -> None:
    old = '"""\nWrite a function that adds.\nassert add(1, 2) == 3\n"""\n'
    new = 'def add(a, b):\n    return a + b\n'
    merged = merge(old, new)
    assert merged.text == old + "\n\n" + new and merged.kept == ["docstring"]
    assert merge(old, old + "\n\n" + new).text == old + "\n\n" + new


def test_unparsable_source_is_taken_as_written() -> None:
    assert merge(PARSER, "def broken(:\n").text == "def broken(:\n"
    assert merge("def broken(:\n", "x = 1\n").text == "x = 1\n"


def test_a_class_indented_differently_gets_its_methods_at_its_own_indent() -> None:
    reply = "class Parser:\n  def term(self):\n    return 0\n"
    merged = merge(PARSER, reply)
    compile(merged.text, "parser.py", "exec")
    # the method moves to the class's indent; its body keeps its own depth below that
    assert "\n  def __init__(self, items):\n      self.items = items" in merged.text


def test_left_out_statements_that_bind_nothing_stay_out() -> None:
    old = "import logging\n\nlogging.basicConfig()\n\n\ndef f():\n    return 1\n"
    new = "import logging\n\n\ndef f():\n    return 2\n"
    merged = merge(old, new)
    assert merged.text == new  # a call at import time is not put back


def test_a_method_put_back_at_a_class_top_goes_above_the_first_decorator() -> None:
    old = ("class A:\n    def a(self):\n        return 1\n\n    @property\n"
           "    def b(self):\n        return 2\n")
    new = "class A:\n    @property\n    def b(self):\n        return 3\n"
    merged = merge(old, new).text
    assert "    @property\n    def b(self):\n        return 3" in merged
    assert merged.index("def a") < merged.index("@property")
    compile(merged, "a.py", "exec")


def test_a_docstring_put_back_goes_above_a_future_import() -> None:
    old = '"""Coerce text."""\n\nfrom __future__ import annotations\n\n\ndef f():\n    return 1\n'
    new = "from __future__ import annotations\n\n\ndef f():\n    return 2\n"
    merged = merge(old, new).text
    assert merged.startswith('"""Coerce text."""\nfrom __future__ import annotations')
    assert ast.get_docstring(ast.parse(merged)) == "Coerce text."


def test_a_future_import_written_below_the_docstring_again_is_hoisted() -> None:
    old = '"""Parse."""\n\nfrom __future__ import annotations\n\n\ndef p():\n    return 1\n'
    reply = ('from __future__ import annotations\n"""Parse."""\n\nfrom __future__ import '
             'annotations\n\n\ndef p():\n    return 2\n')
    merged = merge(old, reply).text
    compile(merged, "parser.py", "exec")
    assert merged.count("from __future__ import annotations") == 1
    assert ast.get_docstring(ast.parse(merged)) == "Parse."
    assert "return 2" in merged


def test_source_nested_past_the_parser_is_taken_as_written() -> None:
    deep = "x = " + "(" * 5000 + "1" + ")" * 5000 + "\n"
    assert merge("y = 1\n", deep).text == deep
