# Reproduces the apalis-board report next to this file (apalis-board-queues-row-count.md):
# serves apalis-board-api 1.0.0's embedded UI (its dist/ folder) with a stub API whose
# GET /api/v1/queues returns three queues, the same statistics on each; /queues lists one.
#
# python3 apalis-board-queues-row-count.py <apalis-board-api-1.0.0/dist> <port>
import json, pathlib, sys
from http.server import HTTPServer, SimpleHTTPRequestHandler

DIST = pathlib.Path(sys.argv[1])
QUEUE = lambda name: {"name": name, "workers": [], "activity": [0] * 7,
                      "stats": [{"title": "SUCCESS_RATE", "stat_type": "Percentage", "value": "100.0", "priority": 0}]}

class Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=str(DIST), **kwargs)

    def do_GET(self):
        if self.path.startswith("/api/v1/queues"):
            body = json.dumps([QUEUE("first"), QUEUE("second"), QUEUE("third")]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.startswith("/api/"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"[]")
        else:
            if "." not in self.path.rsplit("/", 1)[-1]:
                self.path = "/index.html"  # the app's own routes
            super().do_GET()

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".wasm": "application/wasm"}

HTTPServer(("127.0.0.1", int(sys.argv[2])), Handler).serve_forever()
