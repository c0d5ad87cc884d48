"""Run the ```python blocks of one Markdown document, in order, in one namespace.

``python tests/docs/run_document.py DOCUMENT DSN``, run by tests/docs/test_docs_run.py in a
process of its own per document (the blocks define models and instrument globally).

- Blocks run in order in one namespace, like a reader pasting them into one notebook.
  A block with a top-level ``await`` runs in the runner's event loop (one task for the
  whole document, so the current session carries over); any other block runs in a worker
  thread, where ``asyncio.run(...)`` works as in a script.
- Every string literal that starts with ``postgresql://`` (``Engine("postgresql://...")``,
  ``Session("postgresql://...")``) is replaced by DSN: the test server, with ``search_path``
  set to the scratch schema the test created for this document, so the blocks run
  twice and side by side without touching anything else. ``DATA_BRIDGE_DSN``, which
  the README's example reads, is that DSN too.
- Names a snippet may use without defining or importing them (the prelude): every name
  of ``data_bridge_core.__all__`` (``Engine``, ``Session``, ...), ``DataBridgeInstrumentor``,
  ``asyncio``, ``provider`` (an SDK TracerProvider with an in-memory exporter) and
  ``meter_provider`` (an SDK MeterProvider with an in-memory reader). Anything else comes
  from an earlier block or a ``docs: setup`` marker (tests/docs/doc_blocks.py).
- At the end, every Session and Engine left in the namespace is closed.

Prints one line per block (ran, skipped and why) and, on a failure, the traceback with
the document's line numbers; exit code 1 on the first failing block.
"""

from __future__ import annotations

import ast
import asyncio
import sys
import traceback
import types
from pathlib import Path
from typing import Any

from doc_blocks import python_blocks

_DSN_PREFIXES = ("postgresql://", "postgres://")


class _PointDsnsAtTheScratchSchema(ast.NodeTransformer):
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, str) and node.value.startswith(_DSN_PREFIXES):
            return ast.copy_location(ast.Constant(self.dsn), node)
        return node


def _compile(code: str, document: str, line: int, dsn: str) -> Any:
    tree = ast.parse(code, filename=document)
    ast.increment_lineno(tree, line - 1)
    tree = ast.fix_missing_locations(_PointDsnsAtTheScratchSchema(dsn).visit(tree))
    return compile(tree, document, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


async def _run(code: Any, namespace: dict[str, Any]) -> None:
    if code.co_flags & 0x80:  # CO_COROUTINE: the block awaits at top level
        await eval(code, namespace)
    else:
        await asyncio.to_thread(exec, code, namespace)


def _namespace() -> dict[str, Any]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import data_bridge_core
    from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    # A real module: models resolve their annotations through sys.modules[cls.__module__].
    module = types.ModuleType("__docs__")
    sys.modules[module.__name__] = module
    namespace = module.__dict__
    namespace.update({name: getattr(data_bridge_core, name) for name in data_bridge_core.__all__})
    namespace.update(
        asyncio=asyncio,
        DataBridgeInstrumentor=DataBridgeInstrumentor,
        provider=provider,
        meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]),
    )
    return namespace


async def _close_left_overs(namespace: dict[str, Any]) -> None:
    from data_bridge_core import Engine, Session

    for value in list(namespace.values()):
        if isinstance(value, Session):
            await value.close()
    for value in list(namespace.values()):
        if isinstance(value, Engine):
            await value.dispose()


async def run_document(document: str, markdown: str, dsn: str) -> int:
    namespace = _namespace()
    status = 0
    try:
        for block in python_blocks(markdown):
            where = f"{document}:{block.line}"
            if block.problems:
                print(f"{where}: {'; '.join(block.problems)}")
                return 1
            if block.skip is not None:
                print(f"{where}: skipped ({block.skip})")
                continue
            try:
                if block.setup:
                    await _run(_compile(block.setup, document, block.line, dsn), namespace)
                await _run(_compile(block.code, document, block.line, dsn), namespace)
                if block.then:
                    await _run(_compile(block.then, document, block.line, dsn), namespace)
            except BaseException:
                print(f"{where}: FAILED")
                traceback.print_exc(file=sys.stdout)
                status = 1
                break
            print(f"{where}: ran")
    finally:
        await _close_left_overs(namespace)
    return status


if __name__ == "__main__":
    document, dsn = sys.argv[1:3]
    sys.exit(asyncio.run(run_document(document, Path(document).read_text(), dsn)))
