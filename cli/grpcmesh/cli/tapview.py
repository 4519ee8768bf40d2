"""Reading sidecars' ``/tap`` streams for ``grpcmesh tap``: one thread per sidecar, lines merged."""

from __future__ import annotations

import datetime as dt
import json
import queue
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from grpcmesh.cli.errors import CommandError

__all__ = ["follow", "format_record"]


def format_record(r: Mapping[str, Any]) -> str:
    clock = dt.datetime.fromtimestamp(float(r["ts"]), tz=dt.UTC).strftime("%H:%M:%S.%f")[:-3]
    return (
        f"{clock} {r['direction'][:3]} {r['service']} {r['method']} {r['code']} "
        f"{float(r['latency_ms']):.2f}ms request_id={r['request_id']}"
    )


def _open(admin: str, params: Mapping[str, str | None]) -> Any:
    address = admin if "://" in admin else f"http://{admin}"
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v})
    try:
        return urllib.request.urlopen(f"{address.rstrip('/')}/tap?{query}", timeout=30)
    except urllib.error.HTTPError as err:
        raise CommandError(f"{admin}/tap: {err.read().decode().strip() or err}") from err
    except (urllib.error.URLError, OSError) as err:
        raise CommandError(f"cannot reach {admin}/tap (a sidecar's --admin address?): {err}") from err


def _pump(resp: Any, admin: str, out: queue.Queue[tuple[str, dict[str, Any] | None]]) -> None:
    try:
        for raw in resp:
            line = raw.strip()
            if line:
                out.put((admin, json.loads(line)))
    except (OSError, ValueError):
        pass
    out.put((admin, None))


def follow(admins: Sequence[str], params: Mapping[str, str | None], limit: int, as_json: bool) -> None:
    """Prints matching calls from every sidecar until ``limit`` (0: forever) or all streams end."""
    responses = [(admin, _open(admin, params)) for admin in admins]  # fail fast on a bad address
    lines: queue.Queue[tuple[str, dict[str, Any] | None]] = queue.Queue(10_000)
    for admin, resp in responses:
        threading.Thread(target=_pump, args=(resp, admin, lines), daemon=True).start()
    open_streams, shown = len(responses), 0
    try:
        while open_streams and (not limit or shown < limit):
            admin, record = lines.get()
            if record is None:
                open_streams -= 1
            elif "dropped" in record:
                print(f"({admin}: {record['dropped']} calls not shown: reading too slowly)", flush=True)
            elif "method" in record:
                print(json.dumps(record) if as_json else format_record(record), flush=True)
                shown += 1
    finally:
        for _, resp in responses:
            resp.close()
