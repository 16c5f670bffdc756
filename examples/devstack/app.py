#!/usr/bin/env python3
"""The devstack's app server: answers GET / and GET /health with 200 only when
both backends serve — it increments a counter in Redis (RESP over a socket) and
runs a query in Postgres (psql over its Unix socket) on every request.

Environment (set by stackup.toml): APP_PORT, REDIS_PORT, PG_PORT, PG_SOCKET_DIR,
PG_USER, PG_BIN (the directory holding psql).
"""
import json
import os
import socket
import subprocess
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

APP_PORT = int(os.environ.get("APP_PORT", "8090"))
REDIS_PORT = int(os.environ.get("REDIS_PORT", "6390"))
PG_PORT = os.environ.get("PG_PORT", "5433")
# psql takes a host that starts with '/' as a socket directory; the file gives it relative.
PG_SOCKET_DIR = os.path.abspath(os.environ.get("PG_SOCKET_DIR", ".stackup/postgres"))
PG_USER = os.environ.get("PG_USER", "postgres")
PSQL = os.path.join(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"), "psql")


def redis_incr(key):
    """INCR key over RESP; the new value."""
    with socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=2) as s:
        s.sendall(f"*2\r\n$4\r\nINCR\r\n${len(key)}\r\n{key}\r\n".encode())
        reply = s.recv(64).decode()
    if not reply.startswith(":"):
        raise RuntimeError(f"redis answered {reply.strip()!r}")
    return int(reply[1:].strip())


def postgres_query(sql):
    """One value from psql against the stack's own server (its socket and port)."""
    p = subprocess.run([PSQL, "-X", "-A", "-t", "-h", PG_SOCKET_DIR, "-p", PG_PORT, "-U", PG_USER, "-d", "postgres",
                        "-c", sql], capture_output=True, text=True, timeout=5)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip() or f"psql exited with {p.returncode}")
    return p.stdout.strip()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path not in ("/", "/health"):
            return self.answer(404, {"error": "not found: try / or /health"})
        body, ok = {}, True
        try:
            body["redis"] = {"hits": redis_incr("devstack:hits")}
        except (OSError, RuntimeError, ValueError) as e:
            body["redis"], ok = {"error": str(e)}, False
        try:
            body["postgres"] = {"select": int(postgres_query("select 1")),
                                "version": postgres_query("show server_version")}
        except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
            body["postgres"], ok = {"error": str(e)}, False
        self.answer(200 if ok else 503, body)

    def answer(self, status, body):
        data = (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", APP_PORT), Handler)
    print(f"app: listening on 127.0.0.1:{APP_PORT}", flush=True)
    server.serve_forever()
