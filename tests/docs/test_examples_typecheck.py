"""The README's and docs/usage.md's Python examples pass ``mypy --strict``.

Each document's ```python blocks become one module: a block that defines
classes or functions stays at module level as written; of any other block,
the imports go to module level and the statements become the body of an
``async def`` whose parameters are the names the document's
``<!-- mypy context: ... -->`` comment declares, one per line
(``session: Session``; the comment may also hold the imports they need).
Blocks and their markers come from tests/docs/doc_blocks.py (the same as the run of
tests/docs/test_docs_run.py); a block marked ``<!-- mypy: skip -->`` is not checked (the plain
annotation style, which works at run time but that a type checker reads as
plain values). A forgotten ``await`` on a relationship must be an error.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from doc_blocks import python_blocks

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = ["README.md", "docs/usage.md"]
_CONTEXT = re.compile(r"<!-- mypy context:[^\n]*\n(.*?)-->", re.DOTALL)

_DEFINITIONS = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)

pytestmark = pytest.mark.slow


def example_module(markdown: str) -> str:
    """The checked module for one document (see the module docstring)."""
    context = _CONTEXT.search(markdown)
    future: list[str] = []
    top: list[str] = []
    declared: list[str] = []
    for node in ast.parse(textwrap.dedent(context.group(1)) if context else "").body:
        if isinstance(node, ast.AnnAssign) and node.value is None:
            declared.append(ast.unparse(node))  # "session: Session" -> a parameter
        else:
            top.append(ast.unparse(node))
    params = ", ".join(declared)
    bodies: list[str] = []
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    for block in python_blocks(markdown):
        if block.mypy_skip:
            continue
        tree = compile(block.code, "<example>", "exec", flags=flags)
        assert isinstance(tree, ast.Module)
        # A block that defines classes or functions is a module: it stays at module
        # level as written. Any other block is a snippet run inside a coroutine.
        is_module = any(isinstance(node, _DEFINITIONS) for node in tree.body)
        body: list[str] = []
        for node in tree.body:
            text = ast.unparse(node)
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                future.append(text)
            elif is_module or isinstance(node, ast.Import | ast.ImportFrom):
                top.append(text)
            else:
                body.append(text)
        if body:
            name = f"_example_{len(bodies)}"
            code = textwrap.indent("\n".join(body), "    ")
            bodies.append(f"async def {name}({params}) -> None:\n{code}\n")
    return "\n\n".join([*dict.fromkeys(future), *top, *bodies]) + "\n"


def run_mypy(module: str, tmp_path: Path, name: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"{name}.py"
    path.write_text(module)
    env = {**os.environ, "MYPYPATH": str(ROOT / "src")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-warn-unused-ignores",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            str(path),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_python_examples_of_the_document_pass_mypy_strict(
    document: str, tmp_path: Path
) -> None:
    module = example_module((ROOT / document).read_text())
    assert "class " in module  # the document's models were found
    result = run_mypy(module, tmp_path, "examples")
    assert result.returncode == 0, f"{result.stdout}\n--- checked module ---\n{module}"


FORGOTTEN_AWAIT = """
from __future__ import annotations
from data_bridge_core import Column, Mapped, Rel, Table, relationship


class Author(Table):
    id: Mapped[int] = Column(primary_key=True)
    name: Mapped[str]
    books: Rel[list[Book]] = relationship(back_populates="author")


class Book(Table):
    id: Mapped[int] = Column(primary_key=True)
    author_id: Mapped[int] = Column(foreign_key="author.id")
    title: Mapped[str]
    author: Rel[Author] = relationship(back_populates="books")


async def titles(author: Author) -> list[str]:
    return [book.title for book in {books}]


async def name_of(book: Book) -> str:
    return ({author}).name
"""


def test_a_forgotten_await_on_a_relationship_is_a_type_error(tmp_path: Path) -> None:
    forgotten = FORGOTTEN_AWAIT.format(books="author.books", author="book.author")
    result = run_mypy(forgotten, tmp_path, "forgotten")
    assert result.returncode == 1
    assert '"RelatedList[Book]" has no attribute "__iter__"' in result.stdout
    assert '"Awaitable[Author]" has no attribute "name"' in result.stdout
    assert result.stdout.count('Maybe you forgot to use "await"?') == 2
    # the same code with its awaits passes
    awaited = FORGOTTEN_AWAIT.format(books="await author.books", author="await book.author")
    assert run_mypy(awaited, tmp_path, "awaited").returncode == 0
