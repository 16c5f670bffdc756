#!/usr/bin/env python3
"""The devstack's app server: answers GET / and GET /health with 200 only when
both backends serve — on every request it increments a counter in Redis (RESP)
and runs `select 1` in Postgres (its wire protocol, over its Unix socket). Both
connections are kept open between requests, so a health check costs a round trip
to each, not a new connection or a psql process.

Environment (set by stackup.toml): APP_PORT, REDIS_PORT, PG_PORT, PG_SOCKET_DIR, PG_USER;
PG_HOST to reach Postgres over TCP instead (examples/containers: a container's published port).
"""
import json
import os
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

APP_PORT = int(os.environ.get("APP_PORT", "8090"))
REDIS_PORT = int(os.environ.get("REDIS_PORT", "6390"))
PG_PORT = int(os.environ.get("PG_PORT", "5433"))
PG_SOCKET_DIR = os.path.abspath(os.environ.get("PG_SOCKET_DIR", ".stackup/postgres"))  # relative: to our directory
PG_USER = os.environ.get("PG_USER", "postgres")
PG_HOST = os.environ.get("PG_HOST", "")  # empty: the Unix socket in PG_SOCKET_DIR


FAILURES = (OSError, RuntimeError, ValueError, struct.error)


class Connection:
    """A connection kept open between requests, one request at a time. A kept
    connection that fails (the server restarted) is made again, once."""

    def __init__(self):
        self.sock, self.lock = None, threading.Lock()

    def call(self, *args):
        with self.lock:
            while True:
                fresh = self.sock is None
                try:
                    if fresh:
                        self.connect()
                    return self.request(*args)
                except FAILURES:
                    if self.sock is not None:
                        self.sock.close()
                    self.sock = None
                    if fresh:
                        raise

    def recv_exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        return data


class Redis(Connection):
    def connect(self):
        self.sock = socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=2)

    def request(self, *command):
        """A command whose reply is an integer (INCR)."""
        self.sock.sendall(f"*{len(command)}\r\n".encode() +
                          b"".join(f"${len(c)}\r\n{c}\r\n".encode() for c in command))
        line = b""
        while not line.endswith(b"\r\n"):
            line += self.recv_exact(1)
        if not line.startswith(b":"):
            raise RuntimeError(f"redis answered {line.decode().strip()!r}")
        return int(line[1:])


class Postgres(Connection):
    """Just enough of the frontend/backend protocol 3.0 for a simple query, under
    the trust authentication the devstack's cluster uses for local users."""

    def __init__(self):
        super().__init__()
        self.parameters = {}  # what the server reports at start-up: server_version, ...

    def connect(self):
        if PG_HOST:
            self.sock = socket.create_connection((PG_HOST, PG_PORT), timeout=2)
        else:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(2)
            self.sock.connect(os.path.join(PG_SOCKET_DIR, f".s.PGSQL.{PG_PORT}"))
        body = struct.pack("!i", 196608) + f"user\0{PG_USER}\0database\0postgres\0\0".encode()
        self.sock.sendall(struct.pack("!i", len(body) + 4) + body)
        for kind, data in self.messages():
            if kind == b"R" and struct.unpack("!i", data[:4])[0] != 0:
                raise RuntimeError("postgres asks for a password: the devstack's cluster trusts its users")
            if kind == b"S":
                name, value = data.split(b"\0")[:2]
                self.parameters[name.decode()] = value.decode()

    def request(self, sql):
        """The first column of the first row, as text."""
        body = sql.encode() + b"\0"
        self.sock.sendall(b"Q" + struct.pack("!i", len(body) + 4) + body)
        rows = [data for kind, data in self.messages() if kind == b"D"]
        if not rows:
            raise RuntimeError(f"no row from {sql!r}")
        size = struct.unpack("!i", rows[0][2:6])[0]  # after the column count: the first value's length
        return rows[0][6:6 + size].decode()

    def messages(self):
        """(kind, body) of each message up to ReadyForQuery; an ErrorResponse raises."""
        while True:
            kind = self.recv_exact(1)
            data = self.recv_exact(struct.unpack("!i", self.recv_exact(4))[0] - 4)
            if kind == b"E":
                fields = {f[:1]: f[1:].decode(errors="replace") for f in data.split(b"\0") if f}
                raise RuntimeError(f"postgres: {fields.get(b'M', 'error')}")
            yield kind, data
            if kind == b"Z":
                return


redis, postgres = Redis(), Postgres()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path not in ("/", "/health"):
            return self.answer(404, {"error": "not found: try / or /health"})
        body, ok = {}, True
        try:
            body["redis"] = {"hits": redis.call("INCR", "devstack:hits")}
        except FAILURES as e:
            body["redis"], ok = {"error": str(e)}, False
        try:
            body["postgres"] = {"select": int(postgres.call("select 1")),
                                "server_version": postgres.parameters.get("server_version")}
        except FAILURES as e:
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
