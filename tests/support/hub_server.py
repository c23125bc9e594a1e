"""A loopback Hugging Face Hub: the part of the Hub HTTP API that huggingface_hub's
create_repo + upload_folder (preupload, commit) and HfFileSystem reads (repo info,
paths-info, resolve) use. Files committed are kept in memory, so a test can push a
dataset and read it back. Every request is recorded (method, path, Authorization)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import yaml
from aiohttp import web

SHA = "a" * 40


@dataclass
class Hub:
    url: str = ""
    token: str | None = None  # if set, requests without this bearer token get 401
    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)  # repo -> path -> bytes
    private: dict[str, bool] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    cards: list[dict[str, Any]] = field(default_factory=list)  # metadata validated


def _app(hub: Hub) -> web.Application:
    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        auth = request.headers.get("Authorization")
        hub.requests.append((request.method, request.path, auth))
        if hub.token and auth != f"Bearer {hub.token}":
            return web.json_response({"error": "Invalid credentials"}, status=401)
        return await handler(request)

    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        repo = f"{body.get('organization') or 'me'}/{body['name']}"
        if repo in hub.repos:
            return web.json_response(
                {"error": "exists", "url": f"{hub.url}/datasets/{repo}"}, status=409
            )
        hub.repos[repo] = {}
        hub.private[repo] = body.get("visibility") == "private" or bool(body.get("private"))
        return web.json_response({"url": f"{hub.url}/datasets/{repo}", "name": repo})

    def repo_of(request: web.Request) -> str | None:
        repo = f"{request.match_info['owner']}/{request.match_info['name']}"
        return repo if repo in hub.repos else None

    async def preupload(request: web.Request) -> web.Response:
        if repo_of(request) is None:
            return web.json_response({"error": "Repository not found"}, status=404)
        body = await request.json()
        files = [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
            for f in body["files"]
        ]
        return web.json_response({"files": files})

    async def commit(request: web.Request) -> web.Response:
        repo = repo_of(request)
        if repo is None:
            return web.json_response({"error": "Repository not found"}, status=404)
        for line in (await request.read()).splitlines():
            item = json.loads(line)
            if item["key"] == "file":
                hub.repos[repo][item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            elif item["key"] == "lfsFile":
                return web.json_response({"error": "no LFS here"}, status=400)
        return web.json_response(
            {"commitUrl": f"{hub.url}/datasets/{repo}/commit/{SHA}", "commitOid": SHA}
        )

    async def info(request: web.Request) -> web.Response:
        repo = repo_of(request)
        if repo is None:
            return web.json_response(
                {"error": "Repository not found"},
                status=404,
                headers={"X-Error-Code": "RepoNotFound"},
            )
        siblings = [{"rfilename": p} for p in hub.repos[repo]]
        return web.json_response(
            {"id": repo, "sha": SHA, "private": hub.private[repo], "siblings": siblings}
        )

    def entry(repo: str, path: str) -> dict[str, Any]:
        data = hub.repos[repo][path]
        return {
            "type": "file",
            "path": path,
            "size": len(data),
            "oid": hashlib.sha1(data).hexdigest(),
        }

    async def paths_info(request: web.Request) -> web.Response:
        repo = repo_of(request)
        if repo is None:
            return web.json_response({"error": "Repository not found"}, status=404)
        form = await request.post()
        paths = form.getall("paths") if "paths" in form else []
        return web.json_response([entry(repo, str(p)) for p in paths if p in hub.repos[repo]])

    async def tree(request: web.Request) -> web.Response:
        repo = repo_of(request)
        if repo is None:
            return web.json_response({"error": "Repository not found"}, status=404)
        prefix = request.match_info.get("path", "").strip("/")
        return web.json_response([entry(repo, p) for p in hub.repos[repo] if p.startswith(prefix)])

    async def resolve(request: web.Request) -> web.Response:
        repo = repo_of(request)
        path = request.match_info["path"]
        if repo is None or path not in hub.repos[repo]:
            return web.Response(status=404, headers={"X-Error-Code": "EntryNotFound"})
        data = hub.repos[repo][path]
        headers = {
            "X-Repo-Commit": SHA,
            "ETag": f'"{hashlib.sha1(data).hexdigest()}"',
            "Content-Length": str(len(data)),
        }
        if request.method == "HEAD":
            return web.Response(headers=headers)
        return web.Response(body=data, headers=headers)

    async def validate_yaml(request: web.Request) -> web.Response:
        """The Hub checks a README's metadata before accepting it; so does this one."""
        body = await request.json()
        content = body["content"]
        try:
            meta = yaml.safe_load(content.split("---", 2)[1]) if content.startswith("---") else {}
        except yaml.YAMLError as exc:
            return web.json_response({"errors": [{"message": str(exc)}]}, status=400)
        if not isinstance(meta, dict):
            return web.json_response({"errors": [{"message": "not a mapping"}]}, status=400)
        hub.cards.append(meta)
        return web.json_response({"warnings": []})

    app = web.Application(middlewares=[record])
    app.router.add_post("/api/validate-yaml", validate_yaml)
    r = "/api/datasets/{owner}/{name}"
    app.router.add_post("/api/repos/create", create)
    app.router.add_post(r + "/preupload/{rev}", preupload)
    app.router.add_post(r + "/commit/{rev}", commit)
    app.router.add_get(r, info)
    app.router.add_get(r + "/revision/{rev}", info)
    app.router.add_post(r + "/paths-info/{rev}", paths_info)
    app.router.add_get(r + "/tree/{rev}", tree)
    app.router.add_get(r + "/tree/{rev}/{path:.*}", tree)
    app.router.add_route("*", "/datasets/{owner}/{name}/resolve/{rev}/{path:.*}", resolve)
    return app


@contextmanager
def hub_server(token: str | None = None) -> Iterator[Hub]:
    """A Hub on 127.0.0.1 (random port) in a background thread, for one test."""
    hub = Hub(token=token)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(_app(hub))
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        hub.url = f"http://127.0.0.1:{port}"
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield hub
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(runner.cleanup())
        loop.close()
