"""An HTTP endpoint for tests, in a thread of the test process, started and stopped at will
on the same port (a receiver that is down, then back). It keeps each POST: its path and
headers (`requests`), its body as sent (`raw`) and read as JSON (`bodies`). A POST to
/moved is answered with a redirect to /hook on localhost and kept nowhere (a client must
not follow it)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from atlas_site.testing.services import free_port


class HttpReceiver:
    def __init__(self, *, path: str = "", status: int = 204):
        self.port = free_port()
        self.path = path  # what `url` ends with
        self.status = status
        self.requests: list[tuple[str, dict]] = []
        self.raw: list[bytes] = []
        self.bodies: list[dict] = []
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/moved":
                    self.send_response(307)
                    self.send_header("Location", f"http://localhost:{receiver.port}/hook")
                    self.end_headers()
                    return
                receiver.requests.append((self.path, dict(self.headers)))
                receiver.raw.append(body)
                receiver.bodies.append(json.loads(body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"
