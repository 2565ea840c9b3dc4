"""A small stand-in for the hub's HTTP API on 127.0.0.1, enough for create_repo + upload_folder."""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HubStandIn:
    """Records repositories and their committed files; ``refuse_token`` gets HTTP 403 on commits."""

    def __init__(self, good_token: str = "hf_good", refuse_token: str = "hf_readonly") -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.commits: list[tuple[str, str, str]] = []  # (repo, revision, summary)
        self.validated_yaml: list[str] = []
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

            def do_GET(self):
                if self.path.startswith("/api/whoami-v2"):
                    if self._token() not in (good_token, refuse_token):
                        return self._reply(401, {"error": "Invalid credentials"})
                    return self._reply(200, {"name": "tester", "type": "user", "auth": {"accessToken": {"role": "write"}}})
                self._reply(404, {"error": "not found"})

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
                self._reply(404, {"error": f"no route {self.path}"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "HubStandIn":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
