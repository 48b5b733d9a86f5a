"""Static checks of generated code before it runs, and the approvals they call for.

Two passes over every file the model writes: ruff's flake8-bandit rules (``S``: shell
injection, eval, weak crypto, hard-coded secrets...) and this module's own AST checks for
the operations that matter for an agent on a user's machine: deleting or writing outside
the project, subprocess through a shell, network access, eval/exec, writing credentials.
A finding that needs the network or the file system outside the project asks for approval
(:mod:`.approval`); the rest are reported to the model as review comments.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

NETWORK_MODULES = frozenset({"socket", "urllib", "urllib3", "requests", "httpx", "http",
                             "aiohttp", "ftplib", "smtplib", "telnetlib", "paramiko", "websocket",
                             "websockets"})
DELETERS = frozenset({"rmtree", "remove", "unlink", "rmdir", "removedirs"})
SECRET_PATHS = re.compile(r"(?:^|/)(?:\.ssh|\.aws|\.gnupg|\.netrc|\.pypirc|\.docker|"
                          r"\.kube|\.config/gh)(?:/|$)|id_rsa|id_ed25519")
SECRET_VALUES = re.compile(r"AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----|"
                           r"ghp_[A-Za-z0-9]{30,}|xox[bap]-[A-Za-z0-9-]{10,}")
RUFF_IGNORED = frozenset({"S101"})  # assert: what tests are made of


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    rule: str
    message: str
    needs: str | None = None  # "network" | "outside" (approval) or None (report only)

    def describe(self) -> str:
        return f"{self.file}:{self.line}: {self.rule} {self.message}"


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return _name(node.func)
    return ""


def _literal_path(node: ast.AST) -> str | None:
    """A path written as a literal (or Path("...")) in the call, if any."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Call) and _name(node.func).endswith("Path") and node.args:
        return _literal_path(node.args[0])
    if isinstance(node, ast.BinOp):
        return _literal_path(node.left)
    return None


def _outside(path: str) -> bool:
    return path.startswith(("/", "~")) or ".." in Path(path).parts


class _Checker(ast.NodeVisitor):
    def __init__(self, file: str) -> None:
        self.file = file
        self.found: list[Finding] = []

    def add(self, node: ast.AST, rule: str, message: str, needs: str | None = None) -> None:
        self.found.append(Finding(self.file, getattr(node, "lineno", 0), rule, message, needs))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] in NETWORK_MODULES:
                self.add(node, "SH-NET", f"imports {alias.name} (network access)", "network")
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.module.split(".")[0] in NETWORK_MODULES:
            self.add(node, "SH-NET", f"imports from {node.module} (network access)", "network")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = _name(node.func)
        leaf = name.rsplit(".", 1)[-1]
        paths = [p for p in (_literal_path(a) for a in node.args) if p is not None]
        if leaf in ("eval", "exec") and name in ("eval", "exec", "builtins.eval",
                                                 "builtins.exec"):
            self.add(node, "SH-EVAL", f"calls {leaf}() on computed input")
        if name in ("os.system", "os.popen") or any(
                k.arg == "shell" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in node.keywords):
            self.add(node, "SH-SHELL", f"runs a shell command ({name})")
        if leaf in DELETERS and any(_outside(p) for p in paths):
            self.add(node, "SH-DELETE", f"deletes {paths[0]!r}, outside the project", "outside")
        if leaf in ("open", "write_text", "write_bytes", "mkdir", "touch", "copy", "copyfile",
                    "move", "rename", "replace") and any(_outside(p) for p in paths):
            self.add(node, "SH-WRITE" if leaf != "open" else "SH-OPEN",
                     f"{leaf}() on {paths[0]!r}, outside the project", "outside")
        for path in paths:
            if SECRET_PATHS.search(path):
                self.add(node, "SH-CRED", f"touches credentials at {path!r}", "outside")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and SECRET_VALUES.search(node.value):
            self.add(node, "SH-CRED", "writes what looks like a credential into the code")


def ast_findings(file: str, source: str) -> list[Finding]:
    try:
        tree = ast.parse(source, filename=file)
    except SyntaxError as exc:
        return [Finding(file, exc.lineno or 0, "SH-SYNTAX", f"does not parse: {exc.msg}")]
    checker = _Checker(file)
    checker.visit(tree)
    return checker.found


def ruff_binary() -> str | None:
    """The ruff of this environment (the ``code`` extra), else one on PATH."""
    beside = Path(sys.executable).with_name("ruff")
    return str(beside) if beside.exists() else shutil.which("ruff")


def ruff_findings(files: dict[str, str]) -> Iterator[Finding]:
    """ruff's S rules over the files (written to a scratch dir); nothing if ruff is absent."""
    ruff = ruff_binary()
    if ruff is None or not files:
        return
    with tempfile.TemporaryDirectory(prefix="smallhold-ruff-") as scratch:
        for rel, text in files.items():
            target = Path(scratch) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        done = subprocess.run([ruff, "check", "--isolated", "--no-cache", "--select", "S",
                               "--output-format", "json", "--exit-zero", "."], cwd=scratch,
                              capture_output=True, text=True, timeout=60)
    try:
        rows = json.loads(done.stdout or "[]")
    except json.JSONDecodeError:
        return
    for row in rows:
        if row.get("code") in RUFF_IGNORED:
            continue
        rel = Path(row["filename"]).name if not row["filename"].startswith(scratch) else \
            str(Path(row["filename"]).relative_to(scratch))
        yield Finding(rel, int(row.get("location", {}).get("row", 0)), row.get("code", "S"),
                      row.get("message", ""))


def review(files: dict[str, str]) -> list[Finding]:
    """Every finding for the Python files among ``files`` ({path: new content})."""
    python = {rel: text for rel, text in files.items() if rel.endswith(".py")}
    found = [f for rel, text in python.items() for f in ast_findings(rel, text)]
    seen = {(f.file, f.line) for f in found}
    found += [f for f in ruff_findings(python) if (f.file, f.line) not in seen or
              not f.rule.startswith("S6")]
    return sorted(found, key=lambda f: (f.file, f.line, f.rule))
