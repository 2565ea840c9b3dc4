"""A small stand-in for the hub's HTTP API on 127.0.0.1: enough for create_repo + upload_folder, and for reading a
repository back the way `load_dataset("USER/NAME")` and `hf_hub_download` do (repo info, tree, paths-info, resolve)."""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse


class HubStandIn:
    """Records repositories and their committed files; ``refuse_token`` gets HTTP 403 on commits."""

    def __init__(self, good_token: str = "hf_good", refuse_token: str = "hf_readonly") -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.commits: list[tuple[str, str, str]] = []  # (repo, revision, summary)
        self.validated_yaml: list[str] = []
        self.unanswered: list[str] = []  # requests no route answered, for a test to show
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _token(self) -> str:
                return self.headers.get("Authorization", "").removeprefix("Bearer ")

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def _not_found(self) -> None:
                standin.unanswered.append(f"{self.command} {self.path}")
                self._reply(404, {"error": f"no route {self.path}"})

            def _repo(self, kind: str, namespace: str, name: str):
                repo = f"{kind}/{namespace}/{name}"
                return repo, standin.repos.get(repo)

            def _entries(self, files: dict[str, bytes], paths) -> list[dict]:
                """Tree entries of the files and folders among ``paths``."""
                folders = {"/".join(f.split("/")[:i]) for f in files for i in range(1, f.count("/") + 1)}
                out = []
                for path in paths:
                    if path in files:
                        out.append({"type": "file", "path": path, "size": len(files[path]), "oid": _oid(files[path])})
                    elif path in folders:
                        out.append({"type": "directory", "path": path, "oid": hashlib.sha1(path.encode()).hexdigest()})
                return out

            def do_HEAD(self):
                self.do_GET(head=True)

            def do_GET(self, head: bool = False):
                url = urlparse(self.path)
                parts = [unquote(p) for p in url.path.strip("/").split("/")]
                if self.path.startswith("/api/whoami-v2"):
                    if self._token() not in (good_token, refuse_token):
                        return self._reply(401, {"error": "Invalid credentials"})
                    return self._reply(200, {"name": "tester", "type": "user", "auth": {"accessToken": {"role": "write"}}})
                if len(parts) >= 6 and parts[0] == "api" and parts[4] in ("revision", "tree"):  # api/<kind>/<ns>/<name>/...
                    repo, files = self._repo(parts[1], parts[2], parts[3])
                    if files is None:
                        return self._reply(404, {"error": f"Repository {repo} not found"})
                    if parts[4] == "revision":
                        return self._reply(200, {"id": "/".join(parts[2:4]), "sha": standin.sha(repo), "private": False,
                                                 "siblings": [{"rfilename": f} for f in sorted(files)], "tags": []})
                    prefix = "/".join(parts[6:])
                    recursive = parse_qs(url.query).get("recursive", ["false"])[0].lower() == "true"
                    below = {f for f in files if not prefix or f.startswith(prefix + "/")}
                    folders = {"/".join(f.split("/")[:i]) for f in below for i in range(1, f.count("/") + 1)}
                    depth = prefix.count("/") + 1 if prefix else 0
                    listed = sorted(p for p in below | folders if (not prefix or p.startswith(prefix + "/"))
                                    and (recursive or p.count("/") == depth))
                    return self._reply(200, self._entries(files, listed))
                if len(parts) >= 6 and parts[0] == "datasets" and parts[3] == "resolve":  # datasets/<ns>/<name>/resolve/<rev>/<path>
                    repo, files = self._repo("datasets", parts[1], parts[2])
                    path = "/".join(parts[5:])
                    if files is None or path not in files:
                        return self._reply(404, {"error": f"{path} not found in {repo}"})
                    data = files[path]
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("ETag", f'"{_oid(data)}"')
                    self.send_header("X-Repo-Commit", standin.sha(repo))
                    self.end_headers()
                    if not head:
                        self.wfile.write(data)
                    return
                self._not_found()

            def do_POST(self):
                body = self._body()
                if self.path == "/api/validate-yaml":  # open to anyone, as on the hub
                    standin.validated_yaml.append(json.loads(body)["content"])
                    return self._reply(200, {})
                if self._token() not in (good_token, refuse_token):
                    return self._reply(401, {"error": "Invalid credentials"})
                if self.path == "/api/repos/create":
                    payload = json.loads(body)
                    kind = payload.get("type") or "model"
                    repo = f"{kind}s/{payload['organization']}/{payload['name']}"
                    url = f"{standin.url}/{'datasets/' if kind == 'dataset' else ''}{payload['organization']}/{payload['name']}"
                    if repo in standin.repos:
                        return self._reply(409, {"error": "You already created this repo", "url": url})
                    standin.repos[repo] = {}
                    return self._reply(200, {"url": url})
                parts = self.path.split("?")[0].strip("/").split("/")  # api, models, ns, name, action, revision
                if len(parts) >= 6 and parts[4] == "paths-info":
                    repo, files = self._repo(parts[1], parts[2], parts[3])
                    if files is None:
                        return self._reply(404, {"error": f"Repository {repo} not found"})
                    form = parse_qs(body.decode())
                    paths = form.get("paths") or json.loads(body or b"{}").get("paths", [])
                    return self._reply(200, self._entries(files, paths))
                if len(parts) == 6 and parts[4] in ("preupload", "commit"):
                    repo = "/".join(parts[1:4])
                    if repo not in standin.repos:
                        return self._reply(404, {"error": f"Repository {repo} not found"})
                    if parts[4] == "preupload":
                        files = json.loads(body)["files"]
                        return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
                    if self._token() == refuse_token:
                        return self._reply(403, {"error": "You don't have the rights to create a commit in this repo"})
                    summary = ""
                    for line in body.decode().splitlines():
                        item = json.loads(line)
                        if item["key"] == "header":
                            summary = item["value"]["summary"]
                        elif item["key"] == "file":
                            standin.repos[repo][item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    standin.commits.append((repo, parts[5], summary))
                    oid = hashlib.sha1(f"{repo}{len(standin.commits)}".encode()).hexdigest()
                    return self._reply(200, {"commitUrl": f"{standin.url}/{repo}/commit/{oid}", "commitOid": oid})
                self._not_found()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def sha(self, repo: str) -> str:
        """The repository's current commit: changes with every commit to it."""
        return hashlib.sha1(f"{repo}{sum(c[0] == repo for c in self.commits)}".encode()).hexdigest()

    def __enter__(self) -> "HubStandIn":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _oid(data: bytes) -> str:
    """A file's git blob id, as the hub reports it."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
