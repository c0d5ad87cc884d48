"""What a psycopg connection really sends: libpq's own protocol trace, parsed.

The observer for the structural guards of issue 25 (statements per page,
prepared-statement reuse). It sits below every Python layer: psycopg's
implicit BEGIN, ``conn.rollback()``'s ROLLBACK and the DEALLOCATE ALL psycopg
sends after it, and whether a statement was parsed again or bound to a
prepared one, are all in it, whatever the ORM's code path.

libpq writes one line per protocol message (``PQtrace``); the frontend's:
``Query "BEGIN"`` (simple protocol), ``Parse "<name>" "<text>" ...``, ``Bind
"<portal>" "<name>" ...``, ``Execute``. Every ``Query`` and every ``Execute``
is one statement run by the server.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from psycopg import pq

_QUERY = re.compile(r'^F\t\d+\tQuery\t "(?P<text>.*)"$')
# Parse "<name>" "<text>" <n params> <n type oids>: the text may hold quotes (quoted
# identifiers are not escaped in the trace), so it runs to the last '" <n>' that is
# followed by exactly n oids.
_PARSE = re.compile(r'^F\t\d+\tParse\t "(?P<name>[^"]*)" "(?P<rest>.*)$')
_BIND = re.compile(r'^F\t\d+\tBind\t "[^"]*" "(?P<name>[^"]*)"')
_EXECUTE = re.compile(r"^F\t\d+\tExecute\t")


def _parse_text(rest: str) -> str:
    for match in reversed(list(re.finditer(r'" (\d+)((?: \S+)*)$', rest))):
        if len(match.group(2).split()) == int(match.group(1)):
            return rest[: match.start()]
    raise ValueError(f"unreadable Parse message: {rest!r}")


@dataclass
class Statement:
    """One statement the server ran: its text, and how it was sent."""

    text: str
    # "simple" (Query message), "parsed" (Parse + Bind: planned anew), or
    # "prepared" (Bind to a statement prepared earlier on this connection).
    how: str
    prepared_name: str = ""


@dataclass
class WireLog:
    statements: list[Statement] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        return [s.text for s in self.statements]

    def parse(self, trace: str, names: dict[str, str]) -> None:
        bound: tuple[str, str] | None = None
        fresh: set[str] = set()  # statement names parsed in this trace
        for line in trace.splitlines():
            if m := _QUERY.match(line):
                self.statements.append(Statement(m.group("text"), "simple"))
            elif m := _PARSE.match(line):
                names[m.group("name")] = _parse_text(m.group("rest"))
                fresh.add(m.group("name"))
            elif m := _BIND.match(line):
                name = m.group("name")
                bound = (name, names.get(name, f"<prepared {name}>"))
            elif _EXECUTE.match(line):
                assert bound is not None, "Execute without Bind"
                name, text = bound
                if name == "":
                    how = "parsed"
                else:
                    # The Parse of a named statement prepares it: its first Execute
                    # is planned like an unnamed one; later ones reuse it.
                    how = "parsed" if name in fresh else "prepared"
                    fresh.discard(name)
                self.statements.append(Statement(text, how, name))
                bound = None


# Statement names seen on each connection (a prepared statement's text comes from
# the Parse of an earlier trace).
_names: dict[int, dict[str, str]] = {}


@contextlib.contextmanager
def wire_trace(conn: Any) -> Iterator[WireLog]:
    """Trace everything ``conn`` (a psycopg connection) sends inside the block;
    the returned log is filled when the block ends."""
    log = WireLog()
    pgconn = conn.pgconn
    with tempfile.TemporaryFile() as out:
        pgconn.trace(out.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield log
        finally:
            pgconn.untrace()  # flushes libpq's stream into the file
        out.seek(0)
        log.parse(out.read().decode(), _names.setdefault(id(conn), {}))
