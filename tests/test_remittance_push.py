"""The bank's signed push of one transfer over HTTP (RMT-2 "pushed one by one"), on
both backends: an accepted push is imported and credited, a repeat of its bank
reference is a harmless duplicate; forged, replayed (even well signed), late and
malformed pushes are refused AND recorded, nothing credited, up to the limit of
failed pushes per address and minute (then 429, not recorded), only a bounded
part of each stored; with no secret the endpoint answers 503 saying so."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from feecenter.api.app import create_app
from feecenter.auth import service as auth
from feecenter.db.engine import transaction
from feecenter.remittances import push_log
from feecenter.remittances import service as remittances
from feecenter.remittances.service import Settings
from feecenter.remittances.statements import push
from feecenter.remittances.tables import remittance_pushes, remittances as remittances_table
from tests.helpers import OPS, balance, new_account
from tests.rest_harness import HOST, Signed

pytestmark = pytest.mark.spec("RMT-2")
SECRET = "p" * 40
ENTITY = "北京示例科技有限公司"
PUSH = "/api/v1/remittances/push"
P1 = Settings.from_env({}).prefixes[0]


class Bank:
    def __init__(self, rt, http: TestClient, number: str):
        self.rt, self.http, self.number, self.serial = rt, http, number, 0

    def body(self, **changes) -> bytes:
        fields = dict(bank_reference="P20261207001", receiving_account=P1,
                      payee_account=self.number, payer_name=ENTITY,
                      payer_account="6222020200112233", payer_bank="中国银行", amount="1234.56",
                      currency="CNY", memo="充值", value_date="2026-12-07")
        fields.update(changes)
        return json.dumps({k: v for k, v in fields.items() if v is not None},
                          ensure_ascii=False).encode()

    def nonce(self) -> str:
        self.serial += 1
        return f"nonce-{self.serial:016d}"

    def headers(self, body: bytes, *, nonce: str | None = None, secret: str = SECRET,
                late_s: int = 0) -> dict:
        stamp = str(int(self.rt.clock.now().timestamp()) - late_s)
        nonce = nonce or self.nonce()
        return {"X-FC-Push-Timestamp": stamp, "X-FC-Push-Nonce": nonce,
                "X-FC-Push-Signature": push.sign(secret.encode(), stamp, nonce, body),
                "Content-Type": "application/json"}

    def send(self, body: bytes, headers: dict):
        return self.http.post(f"http://{HOST}{PUSH}", content=body, headers=headers)


@pytest.fixture
def bank(rt, monkeypatch) -> Bank:
    monkeypatch.setenv(push.SECRET_ENV, SECRET)
    uin = new_account(rt, "pushed-co", enterprise_name=ENTITY, uscc="91110108551385082Q")
    with transaction(rt.engine) as conn:
        number = remittances.receiving_details(conn, rt.clock, OPS, uin)["accounts"][0]["number"]
    b = Bank(rt, TestClient(create_app(rt), base_url=f"http://{HOST}"), number)
    b.uin = uin
    return b


def pushes(rt) -> list[tuple]:
    with rt.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(
            remittance_pushes.c.outcome, remittance_pushes.c.nonce,
            remittance_pushes.c.remittance_id.is_not(None)).order_by(remittance_pushes.c.id))]


def records(rt) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(remittances_table)).scalar()


def test_an_accepted_push_is_credited_and_a_repeat_of_its_reference_is_a_duplicate(bank):
    body = bank.body()
    first = bank.send(body, bank.headers(body, nonce="nonce-accepted-0001"))
    assert first.status_code == 200, first.text
    assert first.json()["outcome"] == "accepted"
    assert first.json()["remittance"]["state"] == "credited"
    assert balance(bank.rt, bank.uin).cash == 1234_56
    again = bank.send(body, bank.headers(body))  # the bank retries with a fresh nonce
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert again.json()["remittance"]["id"] == first.json()["remittance"]["id"]
    assert balance(bank.rt, bank.uin).cash == 1234_56  # credited once
    assert pushes(bank.rt) == [("accepted", "nonce-accepted-0001", True),
                               ("duplicate", "nonce-0000000000000001", True)]


def test_a_forged_push_is_refused_recorded_and_credits_nothing(bank):
    body = bank.body()
    forged = bank.send(body, bank.headers(body, secret="f" * 40))
    assert forged.status_code == 401 and forged.json()["outcome"] == "forged"
    altered = bank.send(bank.body(amount="9999.00"), bank.headers(body))
    assert altered.status_code == 401 and altered.json()["outcome"] == "forged"
    garbage = bank.send(body, {"X-FC-Push-Timestamp": "soon", "X-FC-Push-Nonce": "x",
                               "X-FC-Push-Signature": "nope"})
    assert garbage.status_code == 401 and garbage.json()["outcome"] == "forged"
    assert [p[0] for p in pushes(bank.rt)] == ["forged"] * 3
    assert all(nonce is None for _, nonce, _ in pushes(bank.rt))  # a forger claims no nonce
    assert records(bank.rt) == 0 and balance(bank.rt, bank.uin).cash == 0


def test_a_replayed_nonce_is_refused_even_well_signed(bank):
    body = bank.body()
    headers = bank.headers(body, nonce="nonce-replayed-0001")
    assert bank.send(body, headers).json()["outcome"] == "accepted"
    other = bank.body(bank_reference="P20261207002", amount="1.00")
    replay = bank.send(other, bank.headers(other, nonce="nonce-replayed-0001"))
    assert replay.status_code == 409, replay.text
    assert replay.json()["outcome"] == "replayed"
    assert "nonce" in replay.json()["error"]["message_en"]
    assert [p[0] for p in pushes(bank.rt)] == ["accepted", "replayed"]
    assert records(bank.rt) == 1 and balance(bank.rt, bank.uin).cash == 1234_56


def test_a_late_push_is_refused_recorded_and_its_nonce_spent(bank):
    body = bank.body()
    late = bank.send(body, bank.headers(body, nonce="nonce-late-000001",
                                        late_s=push.WINDOW_S + 60))
    assert late.status_code == 401 and late.json()["outcome"] == "late"
    assert records(bank.rt) == 0 and balance(bank.rt, bank.uin).cash == 0
    again = bank.send(body, bank.headers(body, nonce="nonce-late-000001"))
    assert again.status_code == 409 and again.json()["outcome"] == "replayed"
    assert pushes(bank.rt) == [("late", "nonce-late-000001", False), ("replayed", None, False)]


@pytest.mark.parametrize("changes, field", [
    ({"amount": "12,30"}, "push.amount"), ({"currency": "cny"}, "push.currency"),
    ({"value_date": "7/12/2026"}, "push.value_date"), ({"payer_name": None}, "push.payer_name"),
    ({"extra": "x"}, "push.extra"), ({"amount": "0.00"}, "push.amount"),
])
def test_a_malformed_push_is_refused_naming_the_field_and_recorded(bank, changes, field):
    body = bank.body(**changes)
    response = bank.send(body, bank.headers(body))
    assert response.status_code == 400, response.text
    assert response.json()["outcome"] == "malformed"
    assert response.json()["error"]["field"] == field
    assert [p[0] for p in pushes(bank.rt)] == ["malformed"]
    assert records(bank.rt) == 0


@pytest.mark.parametrize("body", [b"<xml/>", b'{"amount": "1.00", "amount": "2.00"}', b"\xff\xfe"],
                         ids=["xml", "duplicate-key", "not-utf8"])
def test_a_push_that_is_not_a_json_object_is_malformed_and_recorded(bank, body):
    response = bank.send(body, bank.headers(body))
    assert response.status_code == 400 and response.json()["outcome"] == "malformed"
    assert [p[0] for p in pushes(bank.rt)] == ["malformed"]


def test_the_same_reference_with_other_content_is_refused_and_recorded(bank):
    body = bank.body()
    assert bank.send(body, bank.headers(body)).json()["outcome"] == "accepted"
    changed = bank.body(amount="1.00")
    response = bank.send(changed, bank.headers(changed))
    assert response.status_code == 409 and response.json()["outcome"] == "refused"
    assert balance(bank.rt, bank.uin).cash == 1234_56
    assert [p[0] for p in pushes(bank.rt)] == ["accepted", "refused"]


def test_without_a_secret_the_endpoint_says_it_is_off(bank, monkeypatch):
    monkeypatch.delenv(push.SECRET_ENV)
    body = bank.body()
    response = bank.send(body, bank.headers(body))
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "PushNotConfigured" and push.SECRET_ENV in error["message_en"]
    assert pushes(bank.rt) == []


def test_operators_list_the_pushes_customers_cannot(bank):
    body = bank.body()
    bank.send(body, bank.headers(body))
    bank.send(body, bank.headers(body, secret="f" * 40))
    with bank.rt.engine.begin() as conn:
        _, ops_key = auth.create_operator(conn, bank.rt.clock, OPS, "push-ops")
        customer_key = auth.create_api_key(conn, bank.rt.clock, OPS, bank.uin)
    operator = Signed(bank.rt, bank.http, ops_key)
    listing = operator.send("GET", "/api/v1/ops/remittance-pushes").json()
    assert [p["outcome"] for p in listing["items"]] == ["forged", "accepted"]
    assert listing["items"][0]["reason"] and listing["items"][1]["remittance_id"]
    only = operator.send("GET", "/api/v1/ops/remittance-pushes", query={"outcome": "forged"})
    assert only.json()["total"] == 1
    denied = Signed(bank.rt, bank.http, customer_key).send("GET", "/api/v1/ops/remittance-pushes")
    assert denied.status_code == 403


# ---------------------------------------------------------------- a flood of failed pushes

def forge(bank: Bank, http: TestClient | None = None, body: bytes | None = None):
    body = bank.body() if body is None else body
    return (http or bank.http).post(f"http://{HOST}{PUSH}", content=body,
                                    headers=bank.headers(body, secret="f" * 40))


def test_failed_pushes_beyond_the_limit_per_address_are_429_and_not_recorded(bank):
    limit = push_log.MAX_FAILED_PER_MINUTE
    late = bank.body()
    assert bank.send(late, bank.headers(late, late_s=push.WINDOW_S + 60)).status_code == 401
    malformed = bank.body(amount="12,30")
    assert bank.send(malformed, bank.headers(malformed)).status_code == 400
    for _ in range(limit - 2):  # late, malformed and forged all count
        assert forge(bank).status_code == 401
    assert len(pushes(bank.rt)) == limit
    flooded = forge(bank)
    assert flooded.status_code == 429, flooded.text
    assert flooded.json()["outcome"] == "limited" and flooded.json()["push_id"] is None
    assert flooded.json()["error"]["code"] == "TooManyRequests"
    assert int(flooded.headers["Retry-After"]) > 0
    replayed = bank.send(late, bank.headers(late, nonce="nonce-0000000000000001"))
    assert replayed.status_code == 429  # a replay is a failure too
    assert len(pushes(bank.rt)) == limit  # nothing more written
    # the bank's good push from the same address is never limited
    good = bank.body()
    assert bank.send(good, bank.headers(good)).json()["outcome"] == "accepted"
    # another address has its own count; the next minute the first one's starts again
    other = TestClient(create_app(bank.rt), base_url=f"http://{HOST}",
                       client=("198.51.100.7", 40000))
    assert forge(bank, other).status_code == 401
    bank.rt.clock.advance(minutes=1)
    assert forge(bank).status_code == 401
    assert len(pushes(bank.rt)) == limit + 3
    assert balance(bank.rt, bank.uin).cash == 1234_56


def test_what_is_stored_of_a_refused_push_is_bounded(bank):
    huge = b'{"memo": "' + b"x" * (900 * 1024) + b'"}'  # under the 1 MB guard
    assert forge(bank, body=huge).status_code == 401
    long_amount = bank.body(amount="1" * 250)
    refused = bank.send(long_amount, bank.headers(long_amount))
    assert refused.status_code == 400 and refused.json()["outcome"] == "malformed"
    with bank.rt.engine.connect() as conn:
        rows = conn.execute(select(remittance_pushes)).mappings().all()
    assert len(rows) == 2
    for row in rows:
        stored = sum(len(str(v)) for v in row.values() if v is not None)
        assert stored < push_log.MAX_REASON + 400, row
        assert len(row["body_digest"]) == 64 and len(row["reason"] or "") <= push_log.MAX_REASON


def test_a_client_address_that_is_not_an_ip_address_opens_no_bucket_of_its_own():
    """Free text (a forwarded-address header a client writes) is one shared key: a
    flood under ever new names is limited as one client."""
    from feecenter import ratelimit
    assert {ratelimit.client_key(f"x{i}") for i in range(50)} == {ratelimit.OTHER}
    assert ratelimit.client_key("198.51.100.7") == "198.51.100.7"
    assert ratelimit.client_key("2001:db8:1:2::9") == "2001:db8:1:2::/64"
