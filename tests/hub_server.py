#!/usr/bin/env python3
"""hub_server.py — a loopback stand-in for the Hugging Face Hub, for tests.

Serves folders as model repositories in the Hub's URL and header conventions:
  GET  /api/models/{repo}/revision/{rev}   {"id", "sha", "siblings": [{"rfilename"}]}
  HEAD|GET /{repo}/resolve/{rev}/{file}
       large files (.safetensors, .gguf, .bin or >= 1 MiB, as if in LFS):
         302 to /cdn/{sha256}; X-Linked-Etag: "{sha256}", X-Linked-Size, X-Repo-Commit
       small files: 200; ETag: "{git blob sha1}", X-Repo-Commit
  GET  /cdn/{sha256}                        the bytes; Range: bytes=N- gives 206
Errors as the Hub sends them: 404 + X-Error-Code RepoNotFound / RevisionNotFound /
EntryNotFound; a gated repo answers resolve with 401 (no token) or 403 (wrong token),
X-Error-Code GatedRepo.

usage: hub_server.py --repo ORG/NAME=DIR ... [--gated ORG/NAME --token T]
Binds 127.0.0.1 port 0 and prints "PORT n". Then reads commands on stdin, one a line:
  cut N      the next N file bodies are cut after half their bytes (connection closed)
  corrupt N  the next N file bodies have one byte flipped
  busy N     the next N requests of any kind get 503
  log        prints one line per request since the last clear: METHOD PATH STATUS RANGE SENT
             then "end"
  clear      forgets the log
  quit       (or end of input) stops the server
Every command but log answers "ok". Python 3 standard library only.
"""
import argparse
import hashlib
import http.server
import json
import os
import socket
import sys
import threading
import urllib.parse

LFS_EXT = (".safetensors", ".gguf", ".bin")


class Repo:
    def __init__(self, name, root):
        self.name = name
        self.files = {}  # rfilename -> bytes
        for dirpath, _, names in os.walk(root):
            for n in sorted(names):
                full = os.path.join(dirpath, n)
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                with open(full, "rb") as f:
                    self.files[rel] = f.read()
        h = hashlib.sha1(name.encode())
        for rel in sorted(self.files):
            h.update(rel.encode() + b"\0" + hashlib.sha256(self.files[rel]).digest())
        self.commit = h.hexdigest()

    def is_lfs(self, rel):
        return rel.endswith(LFS_EXT) or len(self.files[rel]) >= (1 << 20)


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.cut = 0
        self.busy = 0
        self.corrupt = 0
        self.log = []
        self.repos = {}
        self.blobs = {}  # sha256 -> bytes
        self.gated = set()
        self.token = None


STATE = State()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeHub/1.0"

    def log_message(self, fmt, *args):  # quiet: the test reads our own log
        pass

    def record(self, status, rng, sent):
        with STATE.lock:
            STATE.log.append("%s %s %d %s %d" % (self.command, self.path, status, rng or "-", sent))

    def send_plain(self, status, headers=(), body=b"", rng=None):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        # log before answering: the client may ask for the log the moment it has the answer
        self.record(status, rng, len(body) if self.command != "HEAD" else 0)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def error(self, status, code, msg):
        body = json.dumps({"error": msg}).encode()
        self.send_plain(status, [("Content-Type", "application/json"), ("X-Error-Code", code),
                                 ("X-Error-Message", msg)], body)

    def send_body(self, data, extra_headers):
        """A file body, honouring Range, with the test's faults applied."""
        size = len(data)
        rng = self.headers.get("Range")
        start = 0
        status = 200
        headers = list(extra_headers)
        if rng:
            if not rng.startswith("bytes=") or "," in rng:
                return self.send_plain(400, body=b"bad range", rng=rng)
            a, _, b = rng[6:].partition("-")
            start = int(a) if a else 0
            end = int(b) if b else size - 1
            if start >= size:
                return self.send_plain(416, [("Content-Range", "bytes */%d" % size)], rng=rng)
            end = min(end, size - 1)
            data = data[start:end + 1]
            status = 206
            headers.append(("Content-Range", "bytes %d-%d/%d" % (start, end, size)))
        cut = corrupt = False
        if self.command == "GET":
            with STATE.lock:
                if STATE.cut > 0:
                    STATE.cut -= 1
                    cut = True
                elif STATE.corrupt > 0:
                    STATE.corrupt -= 1
                    corrupt = True
        if corrupt and data:
            i = len(data) // 2
            data = data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1:]
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        half = len(data) // 2
        self.record(status, rng, 0 if self.command == "HEAD" else half if cut else len(data))
        self.end_headers()
        if self.command == "HEAD":
            return
        if cut:
            self.wfile.write(data[:half])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(data)

    def authorized(self, repo):
        if repo not in STATE.gated:
            return 200
        auth = self.headers.get("Authorization", "")
        if not auth:
            return 401
        return 200 if auth == "Bearer " + (STATE.token or "") else 403

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        with STATE.lock:
            busy = STATE.busy > 0
            STATE.busy -= busy
        if busy:
            return self.error(503, "ServiceUnavailable", "try again")
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/api/models/"):
            rest = path[len("/api/models/"):]
            repo, sep, rev = rest.partition("/revision/")
            if not sep:
                repo, rev = rest, "main"
            return self.api(urllib.parse.unquote(repo), urllib.parse.unquote(rev))
        if path.startswith("/cdn/"):
            blob = STATE.blobs.get(path[5:])
            if blob is None:
                return self.error(404, "EntryNotFound", "no such blob")
            return self.send_body(blob, [("ETag", '"%s"' % path[5:])])
        repo, sep, rest = path.lstrip("/").partition("/resolve/")
        if not sep:
            return self.error(404, "RepoNotFound", "not a hub URL")
        rev, _, rel = rest.partition("/")
        return self.resolve(urllib.parse.unquote(repo), urllib.parse.unquote(rev), urllib.parse.unquote(rel))

    def find(self, repo, rev):
        r = STATE.repos.get(repo)
        if r is None:
            self.error(404, "RepoNotFound", "Repository not found")
            return None
        if rev not in ("main", r.commit):
            self.error(404, "RevisionNotFound", "Invalid rev id: " + rev)
            return None
        return r

    def api(self, repo, rev):
        r = self.find(repo, rev)
        if r is None:
            return
        body = json.dumps({"id": repo, "modelId": repo, "sha": r.commit,
                           "siblings": [{"rfilename": f} for f in sorted(r.files)]}).encode()
        self.send_plain(200, [("Content-Type", "application/json")], body)

    def resolve(self, repo, rev, rel):
        r = self.find(repo, rev)
        if r is None:
            return
        auth = self.authorized(repo)
        if auth != 200:
            return self.error(auth, "GatedRepo",
                              "Access to model %s is restricted. You must have access to it and be "
                              "authenticated to access it. Please log in." % repo)
        data = r.files.get(rel)
        if data is None:
            return self.error(404, "EntryNotFound", "%s does not exist on %s" % (rel, rev))
        common = [("X-Repo-Commit", r.commit)]
        if r.is_lfs(rel):
            sha = hashlib.sha256(data).hexdigest()
            host = "127.0.0.1:%d" % self.server.server_address[1]
            pointer = hashlib.sha1(rel.encode()).hexdigest()  # the pointer file's git id
            return self.send_plain(302, common + [
                ("Location", "http://%s/cdn/%s" % (host, sha)),
                ("ETag", '"%s"' % pointer), ("X-Linked-Etag", '"%s"' % sha),
                ("X-Linked-Size", str(len(data)))])
        git = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        self.send_body(data, common + [("ETag", '"%s"' % git)])


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # a client that hangs up mid-body (the tests make some) is not news
        if isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", action="append", default=[], help="ORG/NAME=DIR")
    ap.add_argument("--gated", action="append", default=[])
    ap.add_argument("--token")
    a = ap.parse_args()
    for spec in a.repo:
        name, _, root = spec.partition("=")
        r = Repo(name, root)
        STATE.repos[name] = r
        for rel, data in r.files.items():
            if r.is_lfs(rel):
                STATE.blobs[hashlib.sha256(data).hexdigest()] = data
    STATE.gated = set(a.gated)
    STATE.token = a.token

    srv = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print("PORT %d" % srv.server_address[1], flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "quit":
            break
        with STATE.lock:
            if cmd[0] == "cut":
                STATE.cut = int(cmd[1])
            elif cmd[0] == "busy":
                STATE.busy = int(cmd[1])
            elif cmd[0] == "corrupt":
                STATE.corrupt = int(cmd[1])
            elif cmd[0] == "clear":
                STATE.log = []
            elif cmd[0] == "log":
                for entry in STATE.log:
                    print(entry)
                print("end", flush=True)
                continue
        print("ok", flush=True)
    srv.shutdown()


if __name__ == "__main__":
    main()
