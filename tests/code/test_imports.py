"""Names a whole-file rewrite drops that the rest of the project imports."""

from __future__ import annotations

from smallhold.apps.code.imports import LostName, lost_names, module_name, restore

PARSER = "from .lexer import tokenize\n\n\ndef parse(text):\n    return tokenize(text)\n\n\n" \
         "class Parser:\n    pass\n"
PROJECT = {
    "pkg/__init__.py": "from .evaluator import evaluate\nfrom . import parser\n",
    "pkg/lexer.py": "def tokenize(text):\n    return text.split()\n",
    "pkg/parser.py": PARSER,
    "pkg/evaluator.py": "from .parser import parse\n\n\ndef evaluate(text):\n"
                        "    return parse(text)\n",
    "tests/test_pkg.py": "from pkg.parser import Parser\nfrom pkg import evaluate\n",
}


def test_module_names_follow_the_import_system() -> None:
    assert module_name("pkg/sub/mod.py") == "pkg.sub.mod"
    assert module_name("src/pkg/__init__.py") == "pkg"
    assert module_name("README.md") is None


def test_a_dropped_function_is_found_with_who_imports_it() -> None:
    rewrite = "class Parser:\n    pass\n"
    assert lost_names(PROJECT, {"pkg/parser.py": rewrite}) == [
        LostName("pkg/parser.py", "parse", "pkg/evaluator.py")]
    dropped_class = "def parse(text):\n    return text\n"
    assert [(x.name, x.importer) for x in lost_names(PROJECT, {"pkg/parser.py": dropped_class})
            ] == [("Parser", "tests/test_pkg.py")]


def test_definitions_however_written_count() -> None:
    guarded = ("try:\n    from fast import parse\nexcept ImportError:\n"
               "    def parse(text):\n        return text\nParser = object\n")
    assert lost_names(PROJECT, {"pkg/parser.py": guarded}) == []
    assert lost_names(PROJECT, {"pkg/parser.py": "from ._impl import *\n"}) == []
    lazy = "def __getattr__(name):\n    raise AttributeError(name)\n"
    assert lost_names(PROJECT, {"pkg/parser.py": lazy}) == []


def test_what_is_not_this_changes_doing_is_not_blamed() -> None:
    broken_before = {**PROJECT, "pkg/parser.py": "class Parser:\n    pass\n"}
    assert lost_names(broken_before, {"pkg/parser.py": "class Parser:\n    x = 1\n"}) == []
    assert lost_names(PROJECT, {"pkg/parser.py": "def parse(:\n"}) == []  # tests report it
    # the importer changed too and no longer needs the name
    both = {"pkg/parser.py": "class Parser:\n    pass\n",
            "pkg/evaluator.py": "def evaluate(text):\n    return text\n"}
    assert lost_names(PROJECT, both) == []
    # a submodule imported from its package is not a name the package must define
    uses_submodule = {**PROJECT, "tests/test_parser.py": "from pkg import parser\n"}
    assert lost_names(uses_submodule, {"pkg/__init__.py": "from .evaluator import evaluate\n"}
                      ) == []
    assert [x.name for x in lost_names(PROJECT, {"pkg/__init__.py": "from . import parser\n"})
            ] == ["evaluate"]


def test_a_dropped_definition_is_put_back_whole() -> None:
    old = ("import functools\n\n\nclass Parser:\n    pass\n\n\n@functools.cache\n"
           "def parse(text):\n    return Parser()\n")
    new = "import functools\n\n\nclass Parser:\n    fixed = True\n"
    merged = restore(old, new, ["parse"])
    assert merged == new + "\n\n@functools.cache\ndef parse(text):\n    return Parser()\n"
    namespace: dict[str, object] = {}
    exec(compile(merged, "parser.py", "exec"), namespace)
    assert getattr(namespace["parse"]("x"), "fixed", False)


def test_a_definition_that_cannot_be_lifted_out_is_not_guessed() -> None:
    guarded = "try:\n    from fast import parse\nexcept ImportError:\n" \
              "    def parse(text):\n        return text\n"
    assert restore(guarded, "X = 1\n", ["parse"]) is None
    twice = "def parse(t):\n    return 1\n\n\ndef parse(t):\n    return 2\n"
    assert restore(twice, "X = 1\n", ["parse"]) is None
    assert restore("LIMIT: int = 3\n", "X = 1\n", ["LIMIT"]) == "X = 1\n\n\nLIMIT: int = 3\n"
