"""TC3-HMAC-SHA256 checked exactly as specified (docs/api.md, "Authentication"), on the REST API and on the
compat endpoint, served for real: host and content-type signed, the credential
scope's date, service and terminator, the canonical URI the raw path byte for
byte, and every refusal an AuthFailure with its reason in Chinese and English."""

from __future__ import annotations

import http.client
import json
import time
from datetime import datetime, timezone

import pytest

from feecenter.api.deps import raw_path
from feecenter.auth import service as auth
from feecenter.auth import tc3
from tests.helpers import OPS, add_cash, new_account


def utc_date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d")


def owner_key(rt, uin):
    with rt.engine.begin() as conn:
        return auth.create_api_key(conn, rt.clock, OPS, uin)


def tc3_headers(key, *, method: str, host: str, path: str, body: bytes = b"",
                timestamp: int, signed=("content-type", "host"), date: str | None = None,
                service: str = "billing", terminator: str = "tc3_request",
                extra: dict | None = None) -> dict:
    """Headers signed with every part of TC3 open to change (the tests' forger)."""
    headers = {"content-type": "application/json", "host": host, **(extra or {})}
    canonical = tc3.canonical_request(method, path, "", headers, list(signed), body)
    date = date or utc_date(timestamp)
    sig = tc3.signature(key.secret_key, date, service, timestamp, canonical)
    return {**headers, "x-tc-timestamp": str(timestamp),
            "authorization": f"TC3-HMAC-SHA256 Credential={key.secret_id}/{date}/{service}/"
                             f"{terminator}, SignedHeaders={';'.join(signed)}, Signature={sig}"}


def send(address: str, method: str, target: str, headers: dict, body: bytes = b""):
    """One raw HTTP request: the target goes on the wire exactly as given."""
    conn = http.client.HTTPConnection(address, timeout=60)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.putheader("content-length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def rest_balance(address, key, uin, *, target=None, signed_path=None, header_edit=None, **sig):
    """GET the balance: (status, body). ``signed_path`` differs from ``target`` to forge."""
    path = f"/api/v1/accounts/{uin}/balance"
    headers = tc3_headers(key, method="GET", host=address, path=signed_path or target or path,
                          timestamp=sig.pop("timestamp", int(time.time())), **sig)
    headers.update(header_edit or {})
    return send(address, "GET", target or path, headers)


def compat_balance(address, key, *, header_edit=None, **sig):
    """DescribeAccountBalance on the compat endpoint: the Response object (English)."""
    body = b"{}"
    headers = tc3_headers(key, method="POST", host=address, path="/", body=body,
                          timestamp=sig.pop("timestamp", int(time.time())), **sig)
    headers.update({"x-tc-action": "DescribeAccountBalance", "x-tc-version": "2018-07-09",
                    "x-tc-language": "en-US", **(header_edit or {})})
    status, answer = send(address, "POST", "/", headers, body)
    assert status == 200
    return answer["Response"]


def refusals(now: int) -> list[tuple[str, dict, str, str]]:
    """(case, how it is signed, AuthFailure reason, a word of the English message)."""
    return [
        ("content-type only", {"signed": ("content-type",)}, "InvalidAuthorization", "host"),
        ("host only", {"signed": ("host",)}, "InvalidAuthorization", "content-type"),
        ("a made-up header only", {"signed": ("x-made-up",), "extra": {"x-made-up": "1"}},
         "InvalidAuthorization", "host"),
        ("a header named twice", {"signed": ("content-type", "content-type", "host")},
         "InvalidAuthorization", "distinct"),
        ("a signed header not sent", {"signed": ("content-type", "host", "x-absent")},
         "InvalidAuthorization", "x-absent"),
        ("the credential date of the day before", {"date": utc_date(now - 86400)},
         "SignatureFailure", "credential date"),
        ("the service cvm", {"service": "cvm"}, "SignatureFailure", "service"),
        ("the terminator tc4_request", {"terminator": "tc4_request"}, "InvalidAuthorization",
         "tc3_request"),
        ("a timestamp with a plus sign", {"timestamp": now, "header_edit": {
            "x-tc-timestamp": f"+{now}"}}, "InvalidAuthorization", "X-TC-Timestamp"),
        ("a timestamp beyond any date", {"timestamp": now, "header_edit": {
            "x-tc-timestamp": "9" * 13}}, "InvalidAuthorization", "X-TC-Timestamp"),
        ("a timestamp an hour old", {"timestamp": now - 3600}, "SignatureExpire", "expired"),
    ]


def test_each_loose_signature_is_refused_with_its_reason_on_rest(live_server):
    rt, address = live_server
    uin = new_account(rt, "tc3-rest")
    add_cash(rt, uin, 12_34)
    key = owner_key(rt, uin)
    assert rest_balance(address, key, uin)[1]["cash"] == "12.34"  # signed as specified
    wrong = []
    for case, how, reason, word in refusals(int(time.time())):
        status, body = rest_balance(address, key, uin, **dict(how))
        error = (body or {}).get("error", {})
        if (status, error.get("details", {}).get("reason")) != (401, reason) \
                or word not in error.get("message_en", "") or not error.get("message_zh"):
            wrong.append((case, status, body))
    assert wrong == []


@pytest.mark.spec("XTR-5")
def test_each_loose_signature_is_refused_with_its_reason_on_compat(live_server):
    rt, address = live_server
    uin = new_account(rt, "tc3-compat")
    key = owner_key(rt, uin)
    assert compat_balance(address, key)["Uin"] == uin  # signed as the SDK signs
    wrong = []
    for case, how, reason, word in refusals(int(time.time())):
        error = compat_balance(address, key, **dict(how)).get("Error", {})
        if error.get("Code") != f"AuthFailure.{reason}" or word not in error.get("Message", ""):
            wrong.append((case, error))
    assert wrong == []


def test_a_path_followed_by_a_control_character_is_refused(live_server):
    """The signature covers /accounts/UIN/balance; the request goes to /accounts/UIN%09/balance
    (or %0D, %0A), which the router once read as that account's balance. The request
    guard now refuses a control character in a path before anything reads it (400
    naming the path); the raw path's part in the signature: the test below."""
    rt, address = live_server
    uin = new_account(rt, "tc3-path")
    key = owner_key(rt, uin)
    signed = f"/api/v1/accounts/{uin}/balance"
    for control in ("%09", "%0D", "%0A"):
        target = f"/api/v1/accounts/{uin}{control}/balance"
        status, body = rest_balance(address, key, uin, target=target, signed_path=signed)
        assert (status, body["error"]["field"]) == (400, "path"), target


def test_the_canonical_uri_is_the_raw_path_byte_for_byte(live_server):
    """/accounts/%31… is routed as /accounts/1…, but what was signed is what was sent."""
    rt, address = live_server
    uin = new_account(rt, "tc3-raw")
    key = owner_key(rt, uin)
    text = str(uin)
    encoded = f"/api/v1/accounts/%3{text[0]}{text[1:]}/balance"
    status, body = rest_balance(address, key, uin, target=encoded)
    assert status == 200 and body["cash"] == "0.00"
    status, body = rest_balance(address, key, uin, target=encoded,
                                signed_path=f"/api/v1/accounts/{uin}/balance")
    assert (status, body["error"]["details"]["reason"]) == (401, "SignatureFailure")


def test_raw_path_is_taken_from_the_asgi_scope_as_sent():
    assert raw_path({"path": "/a\tb", "raw_path": b"/a%09b"}) == "/a%09b"
    assert raw_path({"path": "/a/1", "raw_path": b"/a/%31"}) == "/a/%31"
    # a server without raw_path: the decoded path re-encoded, never stripped
    assert raw_path({"path": "/a\tb\r"}) == "/a%09b%0D"
    assert raw_path({"path": "/v1/x y", "root_path": "/fc"}) == "/fc/v1/x%20y"


def test_our_signer_signs_host_and_content_type_in_the_billing_scope():
    headers = tc3.sign("AKIDx", "k" * 32, method="GET", host="h:1", path="/p", query="",
                       body=b"", content_type="application/json", timestamp=1_772_416_800,
                       nonce="n0nce-123")
    parsed = tc3.parse_authorization(headers["Authorization"])
    assert (parsed.date, parsed.service, parsed.terminator) == ("2026-03-02", "billing",
                                                                "tc3_request")
    assert parsed.signed_headers == ["content-type", "host", "x-fc-nonce"]
    lower = {k.lower(): v for k, v in headers.items()}
    tc3.check_scope(parsed, 1_772_416_800)  # raises if anything were off
    tc3.check_signed_headers(parsed, lower)
