"""A loopback HTTP file server with Range support and scriptable faults, for download tests."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Files:
    blobs: dict[str, bytes]
    cut_after: dict[str, int] = field(default_factory=dict)
    """Path -> bytes to send before dropping the connection (once)."""
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    """(path, Range header) of every request."""
    stall_after: dict[str, int] = field(default_factory=dict)
    """Path -> bytes to send before going silent until the server stops (once)."""
    stalled: threading.Event = field(default_factory=threading.Event)
    """Set when a stalled response has sent its bytes."""
    stop: threading.Event = field(default_factory=threading.Event)
    types: dict[str, str] = field(default_factory=dict)
    """Path -> Content-Type (none sent otherwise)."""


def _handler(files: Files) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            return None

        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            files.requests.append((self.path, rng))
            blob = files.blobs.get(self.path)
            if blob is None:
                self.send_error(404)
                return
            start = int(rng.split("=")[1].split("-")[0]) if rng else 0
            if start >= len(blob) and rng:
                self.send_response(416)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = blob[start:]
            self.send_response(206 if rng else 200)
            self.send_header("Content-Length", str(len(body)))
            if self.path in files.types:
                self.send_header("Content-Type", files.types[self.path])
            if rng:
                self.send_header("Content-Range", f"bytes {start}-{len(blob) - 1}/{len(blob)}")
            self.end_headers()
            stall = files.stall_after.pop(self.path, None)
            if stall is not None:
                self.wfile.write(body[:stall])
                self.wfile.flush()
                files.stalled.set()
                files.stop.wait(60)
                self.close_connection = True
                return
            cut = files.cut_after.pop(self.path, None)
            if cut is not None:
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@contextmanager
def serve(files: Files) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(files))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        files.stop.set()
        server.shutdown()
        server.server_close()
        thread.join()
