"""A minimal signed client for the native REST API (TC3-HMAC-SHA256), stdlib only.

    client = FeeCenterClient("http://127.0.0.1:8000", secret_id, secret_key)
    client.get("/api/v1/accounts/100000000001/balance")

Over HTTPS the server's certificate is checked against the system's CAs, or
against ``cafile`` alone (``feecenter demo --tls`` prints its local CA's file).
Paths are sent and signed as given: percent-encode them first. Each request
carries a fresh signed ``X-FC-Nonce``, so a captured request cannot be replayed.
"""

from __future__ import annotations

import json
import secrets
import ssl
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from feecenter.auth import tc3


class ApiError(Exception):
    def __init__(self, status: int, body: dict):
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


class FeeCenterClient:
    def __init__(self, base_url: str, secret_id: str, secret_key: str, *,
                 clock=time.time, nonce=lambda: secrets.token_hex(16), cafile: str | None = None,
                 timeout_s: float = 30):
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.secret_id = secret_id
        self.secret_key = secret_key
        self._clock = clock
        self._nonce = nonce  # a fresh signed X-FC-Nonce per request (None: no nonce)
        self._tls = ssl.create_default_context(cafile=cafile)

    def get(self, path: str, query: str = "") -> dict:
        return self.request("GET", path, query=query)

    def post(self, path: str, body: dict | None = None, **headers) -> dict:
        return self.request("POST", path, body=body, headers=headers)

    def put(self, path: str, body: dict | None = None) -> dict:
        return self.request("PUT", path, body=body)

    def request(self, method: str, path: str, *, query: str = "", body: dict | None = None,
                headers: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else b""
        host = urlsplit(self.base_url).netloc
        signed = tc3.sign(self.secret_id, self.secret_key, method=method, host=host, path=path,
                          query=query, body=data, content_type="application/json",
                          timestamp=int(self._clock()),
                          nonce=self._nonce() if self._nonce else None)
        for name, value in (headers or {}).items():
            signed[name.replace("_", "-")] = value
        url = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        request = urllib.request.Request(url, data=data if method != "GET" else None,
                                         headers=signed, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s, context=self._tls) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, json.loads(exc.read() or b"{}")) from None
