"""Where to look: what the request names, where the failing check raised, what tests call."""

from __future__ import annotations

from smallhold.apps.code.locate import definitions, places, where_to_look

FILES = {
    "appconfig/__init__.py": "from .loader import load\n",
    "appconfig/coerce.py": "def coerce(raw, kind):\n    return bool(raw)\n",
    "appconfig/loader.py": ("from .coerce import coerce\n\n\nclass Config:\n"
                            "    def get(self):\n        return 1\n\n\n"
                            "def load(environ=None):\n    return coerce('x', bool)\n"),
    "appconfig/errors.py": "class ConfigError(Exception):\n    pass\n",
    "tests/test_loader.py": ("from appconfig import load\n\n\ndef test_debug():\n"
                             "    assert load({'APP_DEBUG': 'false'}).debug is False\n"),
}
TESTS = ["tests/test_loader.py"]


def test_the_map_names_functions_classes_and_methods() -> None:
    found = definitions(FILES)
    assert found["appconfig/loader.py"] == ["Config", "Config.get", "load"]
    assert found["appconfig/__init__.py"] == []


def test_a_dotted_name_in_the_request_is_found_in_its_module() -> None:
    found = places("Booleans are wrong, as the docstring of appconfig.coerce.coerce says.",
                   FILES, TESTS)
    assert found[0].file == "appconfig/coerce.py" and found[0].name == "coerce"
    assert found[0].why == "named in the task"
    # the tests call load: listed after what the request names
    assert ("appconfig/loader.py", "load", "the tests call it") in \
        [(p.file, p.name, p.why) for p in found]


def test_a_path_and_a_bare_name_in_the_request() -> None:
    found = places("load() is wrong; see appconfig/errors.py.", FILES, TESTS)
    described = where_to_look(found)
    assert "- appconfig/errors.py (named in the task)" in described
    assert "- appconfig/loader.py: load (named in the task)" in described
    assert described.count("appconfig/loader.py: load") == 1  # once, with the first reason


def test_where_a_failing_check_raised() -> None:
    failures = ("Failing test: tests/test_loader.py::test_debug\n"
                "  raised in appconfig/coerce.py:2 (coerce):  return bool(raw)\n"
                "  ValueError: nope")
    found = places("debug is wrong", FILES, TESTS, failures)
    assert found[0].file == "appconfig/coerce.py" and found[0].why == "a failing test raised here"


def test_a_one_module_project_gets_no_list() -> None:
    files = {"solution.py": "def f():\n    pass\n",
             "tests/test_public.py": "from solution import f\n\n\ndef test_f():\n    f()\n"}
    assert places("write f()", files, ["tests/test_public.py"]) == []
    assert where_to_look([]) == ""


def test_english_that_happens_to_be_a_function_name_is_not_a_mention() -> None:
    found = places("the loader should load the settings", FILES, [])
    assert found == []
    assert places("make `load` strict", FILES, [])[0].name == "load"
