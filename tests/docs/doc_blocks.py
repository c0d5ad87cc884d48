"""The ```python blocks of a Markdown document and the marker comments right before them.

A marker is an HTML comment (invisible on GitHub) placed directly before a block, only
blank lines between; several may be stacked:

- ``<!-- docs: skip REASON -->``: the block is not run (tests/docs/test_docs_run.py); the
  reason is required (what it needs that a test run lacks, e.g. "needs a collector").
- ``<!-- docs: setup`` + lines of Python + ``-->``: code run just before the block, in the
  same namespace, and not shown to readers (objects a snippet assumes, e.g. ``user``).
- ``<!-- docs: then`` + lines of Python + ``-->``, placed right *after* the block: code
  run just after it (a hidden check that the block works, e.g. a request to its app).
- ``<!-- mypy: skip -->``: the block is not type-checked (tests/docs/test_examples_typecheck.py).

Any other comment there (such as ``<!-- mypy context: ... -->``) is not a marker.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field

_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.DOTALL | re.MULTILINE,
)


@dataclass
class Block:
    """One ```python block: its code, the line its code starts on (1-based), its markers."""

    code: str
    line: int
    skip: str | None = None  # the reason of <!-- docs: skip REASON -->
    setup: str = ""  # the code of <!-- docs: setup ... -->
    then: str = ""  # the code of <!-- docs: then ... --> after the block
    mypy_skip: bool = False
    problems: list[str] = field(default_factory=list)  # malformed markers


def _comments_before(text: str) -> list[str]:
    """The HTML comments right before the end of text (blank lines allowed), nearest last."""
    comments: list[str] = []
    rest = text.rstrip()
    while rest.endswith("-->"):
        start = rest.rfind("<!--")
        if start < 0:
            break
        comments.insert(0, rest[start + 4 : -3])
        rest = rest[:start].rstrip()
    return comments


def _comments_after(text: str) -> list[str]:
    """The HTML comments right after the start of text (blank lines allowed)."""
    comments: list[str] = []
    rest = text.lstrip()
    while rest.startswith("<!--"):
        end = rest.find("-->")
        if end < 0:
            break
        comments.append(rest[4:end])
        rest = rest[end + 3 :].lstrip()
    return comments


def python_blocks(markdown: str) -> list[Block]:
    """Every ```python block of the document, in order, with its markers."""
    blocks: list[Block] = []
    for match in _FENCE.finditer(markdown):
        info = match.group("info").split()
        if not info or info[0] != "python":
            continue
        indent = len(match.group("indent"))
        code = textwrap.dedent(match.group("body")) if indent else match.group("body")
        line = markdown.count("\n", 0, match.start("body")) + 1
        block = Block(code=code, line=line)
        for comment in _comments_before(markdown[: match.start()]):
            head, _, rest = comment.strip().partition("\n")
            head = head.strip()
            if head.startswith("docs: skip"):
                block.skip = head.removeprefix("docs: skip").strip()
                if not block.skip:
                    block.problems.append("<!-- docs: skip --> needs a reason")
            elif head == "docs: setup":
                block.setup += textwrap.dedent(rest) + "\n"
            elif head.startswith("docs:"):
                block.problems.append(f"unknown marker <!-- {head} -->")
            elif head == "mypy: skip":
                block.mypy_skip = True
        for comment in _comments_after(markdown[match.end() :]):
            head, _, rest = comment.strip().partition("\n")
            if head.strip() == "docs: then":
                block.then += textwrap.dedent(rest) + "\n"
        blocks.append(block)
    return blocks
