#!/usr/bin/python3
"""Runs a Deno notebook headless with Debian's nbclient, without losing late outputs.

Deno's Jupyter kernel can publish `status: idle` before the last `stream` / `display_data` /
`execute_result` of a cell (ecosystem.md §2.2); stock nbclient stops collecting at `idle` and drops
them. This runner keeps draining IOPub for a grace period after `idle` and files every message under
the cell it belongs to.

Usage: /usr/bin/python3 tests/notebooks/run_notebook.py NOTEBOOK.ipynb OUT.ipynb [--timeout S] [--grace S]
Prints one JSON line: {"cells": N, "errors": [...], "mimetypes": [...], "seconds": T, "cell_seconds": {index: s}};
exit 1 on a cell error. `cell_seconds` holds each code cell's wall time (grace period included).
"""
import asyncio, json, sys, time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete, CellExecutionError
from nbclient.util import ensure_async


class GracefulClient(NotebookClient):
    """NotebookClient that keeps reading IOPub for `grace` seconds after a cell's idle message."""

    grace = 0.4

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cell_seconds = {}

    async def async_execute_cell(self, cell, cell_index, *args, **kwargs):
        start = time.monotonic()
        try:
            return await super().async_execute_cell(cell, cell_index, *args, **kwargs)
        finally:
            if cell.cell_type == "code":
                self.cell_seconds[cell_index] = round(time.monotonic() - start, 2)

    async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index):
        assert self.kc is not None
        deadline = None
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=timeout))
            except Exception:  # queue.Empty once the grace period has passed
                if deadline is not None:
                    return
                raise
            if msg["parent_header"].get("msg_id") != parent_msg_id:
                continue
            try:
                self.process_message(msg, cell, cell_index)
            except CellExecutionComplete:
                deadline = time.monotonic() + self.grace


def main():
    args = sys.argv[1:]
    src, out = args[0], args[1]
    timeout = int(args[args.index("--timeout") + 1]) if "--timeout" in args else 600
    nb = nbformat.read(src, as_version=4)
    client = GracefulClient(nb, timeout=timeout, kernel_name="deno", allow_errors=True,
                            resources={"metadata": {"path": __import__("os").path.dirname(src) or "."}})
    if "--grace" in args:
        client.grace = float(args[args.index("--grace") + 1])
    start = time.time()
    client.execute()
    nbformat.write(nb, out)
    errors, mimetypes = [], set()
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                errors.append({"cell": i, "ename": o.get("ename"), "evalue": o.get("evalue")})
            for k in o.get("data", {}):
                mimetypes.add(k)
    print(json.dumps({"cells": len(nb.cells), "errors": errors, "mimetypes": sorted(mimetypes),
                      "seconds": round(time.time() - start, 1), "cell_seconds": client.cell_seconds}))
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
