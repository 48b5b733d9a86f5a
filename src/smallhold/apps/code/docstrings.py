"""Docstrings are the specification: a rewrite that changes one gets the original back.

Refusing edits of the test files is not enough. Asked to implement a function "as its
docstring says", a small model whose code disagreed with the docstring's examples rewrote the
examples (and once the ``-> bool`` in the signature) to match its code: the same as editing
a test, in another place. So the write step puts every docstring the project already had
back into the model's rewrite, byte for byte, and tells the next iteration it did. New
functions may have any docstring; a docstring the model removed stays removed (that hides no
requirement from the tests).
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


def _offset(source: str, line: int, col: int) -> int:
    """The character offset of (1-based line, 0-based UTF-8 byte column) in ``source``."""
    lines = source.splitlines(keepends=True)
    before = sum(len(x) for x in lines[: line - 1])
    return before + len(lines[line - 1].encode()[:col].decode(errors="ignore"))


def _segment(source: str, node: ast.Expr) -> tuple[int, int]:
    assert node.end_lineno is not None and node.end_col_offset is not None
    return (_offset(source, node.lineno, node.col_offset),
            _offset(source, node.end_lineno, node.end_col_offset))


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
        shift = new_docs[name].col_offset - old_docs[name].col_offset
        if shift and "\n" in text:  # the function moved in or out a level: follow it
            first, *rest = text.split("\n")
            rest = [(" " * shift + r) if shift > 0 else r[min(-shift, len(r) - len(r.lstrip())):]
                    for r in rest]
            text = "\n".join([first, *rest])
        result = result[:start] + text + result[end:]
    try:
        ast.parse(result)
    except SyntaxError:  # never make a parsing file unparsable
        return new, []
    return result, sorted(changed)
