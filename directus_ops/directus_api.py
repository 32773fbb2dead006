"""A small httpx client for a running Directus: health, login, items, files and assets, and the raw JSON
bodies and paged reads the v8 migration's api mode writes and reads with."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx

from .errors import DirectusApiError


def wait_until_up(url: str, timeout: float = 90, alive: Callable[[], bool] | None = None,
                  why_exited: Callable[[], str] | None = None) -> None:
    """Poll ``/server/ping`` until it answers ``pong``. ``alive`` tells whether the server still runs; if it
    has exited, the error says what ``why_exited`` returns (its exit code and error lines: without ``-v`` the
    user sees no log)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            reason = why_exited() if why_exited is not None else ""
            raise DirectusApiError(f"Directus at {url} exited while starting{f': {reason}' if reason else ''}")
        answering, last = ping(url)
        if answering:
            return
        time.sleep(0.3)
    raise DirectusApiError(f"Directus at {url} did not answer /server/ping within {timeout:.0f} s ({last})")


def ping(url: str) -> tuple[bool, str]:
    """Whether Directus at ``url`` answers ``/server/ping`` with ``pong``, and what came back otherwise (an HTTP
    status, or the connection error's name)."""
    try:
        response = httpx.get(f"{url.rstrip('/')}/server/ping", timeout=2)
    except httpx.HTTPError as exc:
        return False, type(exc).__name__
    if response.status_code == 200 and "pong" in response.text:
        return True, "pong"
    return False, f"HTTP {response.status_code}"


HEALTHY = ("ok", "warn")


def check_health(url: str, token: str | None = None, expect_version: str | None = None, timeout: float = 120) -> dict:
    """Liveness from ``/server/ping``; then ``/server/health``, which must say ok (or warn). Without a token
    Directus 12 refuses health (403) and ping is all there is; with HEALTHCHECK_ENABLED=false it is 404. Only an
    admin sees the version (``releaseId``): with one it must be ``expect_version``, else ``version`` is None."""
    wait_until_up(url, timeout)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"{url.rstrip('/')}/server/health", timeout=30, headers=headers)
    if response.status_code in (401, 403) and token:
        raise DirectusApiError(f"Directus at {url} refused the token for /server/health (HTTP {response.status_code}); "
                               "give an admin's static token, or none")
    if response.status_code == 403:
        return {"status": "reachable", "version": None}
    if response.status_code == 404:
        return {"status": "reachable (health check disabled)", "version": None}
    try:
        body = response.json()
    except ValueError:
        body = {}
    status = body.get("status") if isinstance(body, dict) else None
    if status not in HEALTHY:
        raise DirectusApiError(f"Directus at {url} reports health {status or response.status_code}")
    version = body.get("releaseId")
    if expect_version and version and version != expect_version:
        raise DirectusApiError(f"Directus at {url} reports version {version}, expected {expect_version}; "
                               "the app may still run the old code: restart it")
    return {"status": status, "version": version}


class DirectusClient:
    def __init__(self, url: str, token: str | None = None, timeout: float = 60) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    @classmethod
    def login(cls, url: str, email: str, password: str) -> DirectusClient:
        response = httpx.post(f"{url.rstrip('/')}/auth/login", json={"email": email, "password": password}, timeout=30)
        if response.status_code != 200:
            raise DirectusApiError(f"login to {url} as {email} failed: HTTP {response.status_code}")
        return cls(url, response.json()["data"]["access_token"])

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> DirectusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:  # the message never holds the token (a header)
            error = DirectusApiError(f"{method} {path} at {self.url} failed: {type(exc).__name__}")
            error.transient = True
            raise error from None
        if response.status_code >= 400:
            error = DirectusApiError(f"{method} {path} failed: HTTP {response.status_code} {response.text[:300]}")
            error.transient = response.status_code in (502, 503, 504)  # restarting, or under pressure
            error.status = response.status_code  # type: ignore[attr-defined]
            raise error
        if not response.content:
            return None
        return response.json().get("data")

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json=body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, json=body)

    def send_json(self, method: str, path: str, body: bytes, **params: Any) -> Any:
        """A body already encoded (its size measured against MAX_PAYLOAD_SIZE by the caller)."""
        return self.request(method, path, content=body, params=params,
                            headers={"Content-Type": "application/json"})

    def pages(self, path: str, page_size: int = 5000, **params: Any) -> Iterator[dict[str, Any]]:
        """Every row of a list endpoint, a page at a time (QUERY_LIMIT_MAX may forbid limit=-1)."""
        page = 1
        while True:
            rows = self.get(path, limit=page_size, page=page, **params) or []
            yield from rows
            if len(rows) < page_size:
                return
            page += 1

    def items(self, collection: str, **params: Any) -> list[dict[str, Any]]:
        params.setdefault("limit", -1)
        params.setdefault("sort", "id")
        return self.get(f"/items/{collection}", **params)

    def upload(self, path: Path | None = None, *, content: bytes | IO[bytes] | None = None, filename: str | None = None,
               storage: str | None = None, mime: str = "application/octet-stream", replace: str | None = None,
               **fields: Any) -> dict[str, Any]:
        """Upload a file (``storage`` picks the location; it must come before the file part). ``content``: the
        bytes, or a readable object streamed as the part. ``fields`` (e.g. ``id``, ``filename_disk``, ``folder``)
        are sent before the file, as Directus requires. ``replace``: the id of a file whose bytes this replaces."""
        data = {k: str(v) for k, v in fields.items()}
        if storage:
            data = {"storage": storage, **data}
        body = content if content is not None else Path(path).read_bytes()  # type: ignore[arg-type]
        name = filename or (Path(path).name if path else "upload.bin")
        return self.request("PATCH" if replace else "POST", f"/files/{replace}" if replace else "/files", data=data,
                            files={"file": (name, body, mime)})

    def asset(self, file_id: str) -> bytes:
        response = self.http.get(f"/assets/{file_id}")
        if response.status_code != 200:
            raise DirectusApiError(f"GET /assets/{file_id} failed: HTTP {response.status_code}")
        return response.content

    def server_info(self) -> dict[str, Any]:
        return self.get("/server/info")
