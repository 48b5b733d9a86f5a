"""Docstrings are the specification: a rewrite that changes one gets the original back.

Refusing edits of the test files is not enough. Asked to implement a function "as its
docstring says", a small model whose code disagreed with the docstring's examples rewrote the
examples (and once the ``-> bool`` in the signature) to match its code: the same as editing
a test, in another place. So the write step puts every docstring the project already had
back into the model's rewrite, byte for byte, and tells the next iteration it did. New
functions may have any docstring; a docstring left out of a rewrite of the same definition is put
back too: the prompts ask the model to leave docstrings out, since copying them was most of
what a small task's reply generated (55 of 75 tokens of an MBPP+ reply), at ~27 tokens/s.
"""

from __future__ import annotations

import ast

Documented = ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def _docstring_nodes(tree: ast.Module) -> dict[str, ast.Expr]:
    """The docstring expression of the module and of every class and function, by
    qualified name (``<module>``, ``Parser.parse``, ``outer.inner``)."""
    found: dict[str, ast.Expr] = {}

    def visit(node: Documented, name: str) -> None:
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            found[name] = body[0]
        for child in body:
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                visit(child, child.name if name == "<module>" else f"{name}.{child.name}")

    visit(tree, "<module>")
    return found


def _definitions(tree: ast.Module) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef |
                                                ast.ClassDef]:
    """Every class and function by the qualified name :func:`_docstring_nodes` uses."""
    found: dict[str, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for child in body:
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                found[name] = child
                visit(child.body, f"{name}.")

    visit(tree.body, "")
    return found


def _offset(source: str, line: int, col: int) -> int:
    """The character offset of (1-based line, 0-based UTF-8 byte column) in ``source``."""
    lines = source.splitlines(keepends=True)
    before = sum(len(x) for x in lines[: line - 1])
    return before + len(lines[line - 1].encode()[:col].decode(errors="ignore"))


def _segment(source: str, node: ast.Expr) -> tuple[int, int]:
    assert node.end_lineno is not None and node.end_col_offset is not None
    return (_offset(source, node.lineno, node.col_offset),
            _offset(source, node.end_lineno, node.end_col_offset))


def _reindent(text: str, shift: int) -> str:
    """A docstring's source moved ``shift`` columns (its function moved in or out a level):
    every line after the first follows it."""
    if not shift or "\n" not in text:
        return text
    first, *rest = text.split("\n")
    rest = [(" " * shift + r) if shift > 0 else r[min(-shift, len(r) - len(r.lstrip())):]
            for r in rest]
    return "\n".join([first, *rest])


def keep_docstrings(old: str, new: str) -> tuple[str, list[str]]:
    """``new`` with each docstring that ``old`` also has restored to ``old``'s text, and the
    names whose docstring was put back. Source that does not parse is returned as it is: the
    tests will say what is wrong with it."""
    try:
        before, after = ast.parse(old), ast.parse(new)
    except SyntaxError:
        return new, []
    old_docs, new_docs = _docstring_nodes(before), _docstring_nodes(after)
    changed = [name for name, node in new_docs.items() if name in old_docs
               and ast.literal_eval(node.value) != ast.literal_eval(old_docs[name].value)]
    result = new
    for name in sorted(changed, key=lambda n: -new_docs[n].lineno):  # bottom-up
        start, end = _segment(result, new_docs[name])
        o_start, o_end = _segment(old, old_docs[name])
        text = old[o_start:o_end]
        text = _reindent(text, new_docs[name].col_offset - old_docs[name].col_offset)
        result = result[:start] + text + result[end:]
    try:
        ast.parse(result)
    except SyntaxError:  # never make a parsing file unparsable
        return new, []
    return result, sorted(changed)


def restore_docstrings(old: str, new: str) -> str:
    """``new`` with the docstring of each class and function that ``old`` documented and
    ``new`` defines without one put back, indented to its new place. A one-line definition
    (``def f(): return 1``) and source that does not parse are left as they are."""
    try:
        before, after = ast.parse(old), ast.parse(new)
    except SyntaxError:
        return new
    old_docs, new_docs = _docstring_nodes(before), _docstring_nodes(after)
    bare = [(name, node) for name, node in _definitions(after).items()
            if name in old_docs and name not in new_docs and node.body[0].lineno > node.lineno]
    result = new
    for name, node in sorted(bare, key=lambda item: -item[1].body[0].lineno):  # bottom-up
        first = node.body[0]
        o_start, o_end = _segment(old, old_docs[name])
        text = old[o_start:o_end]
        text = _reindent(text, first.col_offset - old_docs[name].col_offset)
        lines = result.splitlines(keepends=True)
        # above the first statement's decorators and the comments that open the body
        line = min([first.lineno, *(d.lineno for d in getattr(first, "decorator_list", []))])
        while line - 1 > node.lineno and lines[line - 2].strip().startswith("#"):
            line -= 1
        at = sum(len(x) for x in lines[: line - 1])
        result = result[:at] + " " * first.col_offset + text + "\n" + result[at:]
    try:
        ast.parse(result)
    except SyntaxError:  # never make a parsing file unparsable
        return new
    return result
