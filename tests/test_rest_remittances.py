"""Corporate remittances over the native REST API on both backends: a customer's
receiving details, records, payer names and re-verification; an operator's
statement upload (streamed, all or nothing), imports, queues, assignment and
release; bad input per field (4xx naming it, nothing written), malformed, hostile
and mixed-currency statements (nothing imported), and permissions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from feecenter.api import remittances as remittance_api
from feecenter.api import strict
from feecenter.api.app import create_app
from feecenter.auth import service as auth
from feecenter.db.engine import transaction
from feecenter.remittances import cases
from feecenter.remittances.service import Settings
from feecenter.remittances.statements import DEFAULT_MAX_BYTES
from feecenter.remittances.tables import remittance_imports, remittance_payers, remittances
from tests.helpers import OPS, new_account
from tests.rest_harness import HOST, Signed

P1, P2 = Settings.from_env({}).prefixes
ENTITY = "北京示例科技有限公司"
USCC = "91110108551385082Q"
RECEIVING = "755912345600001"
IMPORTS = "/api/v1/ops/remittance-imports"


def mt940(lines: list[tuple], currency: str = "CNY", tail: str = "") -> bytes:
    """One statement of credits (ref, payee, fen, payer, memo) whose balances add up."""
    body, total = [], 0
    for ref, payee, fen, payer, memo in lines:
        total += fen
        body.append(f":61:2612011201C{fen // 100},{fen % 100:02d}NTRFNONREF//{ref}\n"
                    f":86:/PAYEE/{payee}/PAYER/{payer}/MEMO/{memo}\n")
    return (f":20:S1\n:25:{RECEIVING}\n:28C:1/1\n:60F:C261201{currency}0,00\n" + "".join(body)
            + f":62F:C261201{currency}{total // 100},{total % 100:02d}\n-\n" + tail).encode()


@dataclass
class Shop:
    rt: object
    uin: int
    other: int
    customer: Signed
    other_customer: Signed
    operator: Signed

    def number(self, prefix: str = P1) -> str:
        return self.customer.send("GET", f"/api/v1/accounts/{self.uin}/remittance-details") \
            .json()["accounts"][[P1, P2].index(prefix)]["number"]

    def upload(self, data: bytes, query: dict | None = None, who: Signed | None = None):
        return (who or self.operator).send("POST", IMPORTS, data, query)

    def counts(self) -> tuple[int, int, int]:
        with self.rt.engine.connect() as conn:
            return tuple(conn.execute(select(func.count()).select_from(t)).scalar()
                         for t in (remittance_imports, remittances, remittance_payers))


@pytest.fixture
def shop(rt) -> Shop:
    uin = new_account(rt, "acme", enterprise_name=ENTITY, uscc=USCC)
    other = new_account(rt, "other-co")
    with rt.engine.begin() as conn:
        _, ops_key = auth.create_operator(conn, rt.clock, OPS, "remittance-ops")
        key = auth.create_api_key(conn, rt.clock, OPS, uin)
        other_key = auth.create_api_key(conn, rt.clock, OPS, other)
    http = TestClient(create_app(rt), base_url=f"http://{HOST}")
    return Shop(rt, uin, other, Signed(rt, http, key), Signed(rt, http, other_key),
                Signed(rt, http, ops_key))


def day_of_transfers(shop: Shop) -> bytes:
    number = shop.number()
    return mt940([("R-CREDIT", number, 1000_00, ENTITY, "货款"),
                  ("R-PENDING", number, 200_00, "上海代付有限公司", "货款"),
                  ("R-UNASSIGNED", P1 + "0000000000", 300_00, ENTITY, "货款"),
                  ("R-HELD", number, 400_00, ENTITY, "保证金"),
                  ("R-NOTOURS", "621700000000000012345", 500_00, ENTITY, "货款")])


def by_reference(shop: Shop, ref: str) -> dict:
    items = shop.operator.send("GET", f"/api/v1/accounts/{shop.uin}/remittances",
                               query={"limit": "100"}).json()["items"]
    return next(r for r in items if r["bank_reference"] == ref)


def queue(shop: Shop, name: str) -> list[dict]:
    response = shop.operator.send("GET", "/api/v1/ops/remittances", query={"queue": name})
    assert response.status_code == 200, response.text
    return response.json()["items"]


# ---------------------------------------------------------------- journeys

@pytest.mark.spec("RMT-1", "RMT-2", "RMT-3", "RMT-5", "BAL-5")
def test_an_uploaded_statement_is_matched_credited_and_shown_to_the_customer(shop):
    details = shop.customer.send("GET", f"/api/v1/accounts/{shop.uin}/remittance-details").json()
    assert details["payee_entity"] and [a["number"][:15] for a in details["accounts"]] == [P1, P2]
    assert len({a["number"][15:] for a in details["accounts"]}) == 1  # one code, both prefixes
    response = shop.upload(day_of_transfers(shop))
    assert response.status_code == 201, response.text
    summary = response.json()
    assert {k: summary[k] for k in ("lines", "credited", "pending", "unassigned", "held",
                                    "not_ours", "duplicates")} == {
        "lines": 5, "credited": 1, "pending": 1, "unassigned": 1, "held": 1, "not_ours": 1,
        "duplicates": 0}
    assert (summary["credited_amount"], summary["new_amount"]) == ("1000.00", "2400.00")
    assert summary["not_ours_references"] == ["R-NOTOURS"]

    again = shop.upload(day_of_transfers(shop)).json()  # RMT-2: a re-import is harmless
    assert (again["duplicates"], again["credited"], again["credited_amount"]) == (5, 0, "0.00")
    balance = shop.customer.send("GET", f"/api/v1/accounts/{shop.uin}/balance").json()
    assert balance["cash"] == "1000.00"

    listing = shop.customer.send("GET", f"/api/v1/accounts/{shop.uin}/remittances").json()
    assert listing["total"] == 3  # credited, pending, held (the others are nobody's yet)
    # newest first (a file's lines are written in bank-reference order)
    assert [r["bank_reference"] for r in listing["items"]] == ["R-PENDING", "R-HELD", "R-CREDIT"]
    credited = listing["items"][2]
    assert (credited["amount"], credited["state"], credited["state_zh"]) == (
        "1000.00", "credited", "已充值")
    pending = shop.customer.send("GET", f"/api/v1/accounts/{shop.uin}/remittances",
                                 query={"state": "pending_signature"}).json()["items"]
    assert [r["bank_reference"] for r in pending] == ["R-PENDING"] and pending[0]["reason"]
    one = shop.customer.send("GET", f"/api/v1/remittances/{credited['id']}").json()
    assert one["payer_name"] == ENTITY and one["txn_id"]
    # BAL-5: the credit is a recharge entry by corporate remittance in 收支明细
    entries = shop.customer.send("GET", f"/api/v1/accounts/{shop.uin}/transactions",
                                 query={"deduct_mode": "bank-enterprice"}).json()["items"]
    assert [(e["action_type"], e["amount"]) for e in entries] == [("recharge", "1000.00")]
    imports = shop.operator.send("GET", IMPORTS).json()["items"]
    assert [(i["lines"], i["credited"], i["duplicates"], i["source"]) for i in imports] == [
        (5, 0, 5, "mt940"), (5, 1, 0, "mt940")]


@pytest.mark.spec("RMT-5")
def test_a_customer_registers_the_payer_and_re_verification_credits(shop):
    shop.upload(day_of_transfers(shop))
    pending = by_reference(shop, "R-PENDING")
    payers = f"/api/v1/accounts/{shop.uin}/remittance-payers"
    registered = shop.customer.send("POST", payers, {"name": "上海代付有限公司"})
    assert registered.status_code == 201, registered.text
    assert registered.json()["name"] == "上海代付有限公司"
    assert [p["name"] for p in shop.customer.send("GET", payers).json()["items"]] == ["上海代付有限公司"]
    again = shop.customer.send("POST", f"/api/v1/accounts/{shop.uin}/remittances/{pending['id']}/reverify")
    assert again.status_code == 200, again.text
    assert again.json()["state"] == "credited"
    assert shop.customer.send("GET", f"/api/v1/accounts/{shop.uin}/balance").json()["cash"] == "1200.00"
    repeat = shop.customer.send("POST", f"/api/v1/accounts/{shop.uin}/remittances/{pending['id']}/reverify")
    assert repeat.status_code == 409 and repeat.json()["error"]["details"]["state"] == "credited"
    removed = shop.customer.send("DELETE", f"{payers}/{registered.json()['id']}")
    assert removed.status_code == 200 and removed.json()["removed_at"]
    assert shop.customer.send("GET", payers).json()["items"] == []
    kept = shop.customer.send("GET", payers, query={"include_removed": "true"}).json()["items"]
    assert [p["name"] for p in kept] == ["上海代付有限公司"]


@pytest.mark.spec("RMT-3")
def test_an_operator_works_the_queues(shop):
    shop.upload(day_of_transfers(shop))
    [unassigned] = queue(shop, "unassigned")
    assert unassigned["uin"] is None and unassigned["amount"] == "300.00"
    assigned = shop.operator.send("POST", f"/api/v1/ops/remittances/{unassigned['id']}/assign",
                                  {"uin": shop.uin})
    assert assigned.status_code == 200, assigned.text
    assert (assigned.json()["uin"], assigned.json()["state"]) == (shop.uin, "credited")
    [held] = queue(shop, "held")
    assert "保证金" in held["reason"]
    released = shop.operator.send("POST", f"/api/v1/ops/remittances/{held['id']}/release")
    assert released.status_code == 200 and released.json()["state"] == "credited"
    assert [r["bank_reference"] for r in queue(shop, "not_ours")] == ["R-NOTOURS"]
    assert [r["bank_reference"] for r in queue(shop, "pending")] == ["R-PENDING"]
    assert queue(shop, "held") == [] and queue(shop, "unassigned") == []
    assert shop.customer.send("GET", f"/api/v1/accounts/{shop.uin}/balance").json()["cash"] == "1700.00"
    twice = shop.operator.send("POST", f"/api/v1/ops/remittances/{held['id']}/release")
    assert twice.status_code == 409


@pytest.mark.spec("RMT-11")
def test_an_operator_refunds_money_of_no_account_to_its_payer(shop):
    shop.upload(day_of_transfers(shop))
    [unassigned] = queue(shop, "unassigned")
    path = f"/api/v1/ops/remittances/{unassigned['id']}/refund"
    payout = {"holder": "北京某某有限公司", "bank_account": "6222020200001234567",
              "bank": "中国工商银行"}
    before = shop.counts()
    bad = shop.operator.send("POST", path, {"payout": {**payout, "bank_account": "12ab5678"},
                                            "reason": "错号"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "bank_account"
    assert shop.customer.send("POST", path, {"payout": payout, "reason": "错号"}).status_code == 403
    assert shop.counts() == before
    done = shop.operator.send("POST", path, {"payout": payout, "reason": "错号"})
    assert done.status_code == 200, done.text
    assert (done.json()["state"], done.json()["amount"]) == ("refunded", "300.00")
    assert done.json()["arrives_by"]  # 15 working days (RMT-11)
    assert queue(shop, "unassigned") == []
    again = shop.operator.send("POST", path, {"payout": payout, "reason": "错号"})
    assert again.status_code == 409
    assert shop.operator.send("GET", "/api/v1/ops/reconcile").json()["clean"] is True


@pytest.mark.spec("RMT-10", "RMT-11")
def test_an_operator_refunds_what_no_legacy_form_claimed_once(shop):
    shop.upload(mt940([("R-LEGACY", P1, 1000_00, "丙方实业有限公司", "货款")]))
    [legacy] = queue(shop, "unassigned")
    with transaction(shop.rt.engine) as conn:  # a legacy form credited 600 of it
        cases.credit_legacy_form(conn, shop.rt.clock, OPS, shop.other, request_id=1,
                                 amount=600_00, payer_name="丙方实业有限公司",
                                 value_date=date(2026, 12, 1))
    view = f"/api/v1/ops/remittances/{legacy['id']}/legacy"
    shown = shop.operator.send("GET", view).json()
    assert (shown["state"], shown["amount"], shown["remaining"], shown["refund"]) == (
        "legacy", "1000.00", "400.00", None)
    assert [c["amount"] for c in shown["credits"]] == ["600.00"]
    assert shop.customer.send("GET", view).status_code == 403
    path = f"/api/v1/ops/remittances/{legacy['id']}/refund-remainder"
    payout = {"holder": "丙方实业有限公司", "bank_account": "6222020200001234567",
              "bank": "中国工商银行"}
    before = shop.counts()
    bad = shop.operator.send("POST", path, {"payout": {**payout, "bank_account": "12ab5678"},
                                            "reason": "多付"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "bank_account"
    assert shop.customer.send("POST", path, {"payout": payout, "reason": "多付"}).status_code == 403
    assert shop.counts() == before and shop.operator.send("GET", view).json()["remaining"] == "400.00"
    done = shop.operator.send("POST", path, {"payout": payout, "reason": "多付"})
    assert done.status_code == 200, done.text
    assert (done.json()["state"], done.json()["amount"]) == ("legacy", "400.00")
    assert done.json()["arrives_by"]
    again = shop.operator.send("POST", path, {"payout": payout, "reason": "多付"})
    assert again.status_code == 409 and again.json()["error"]["field"] == "remittance_id"
    shown = shop.operator.send("GET", view).json()
    assert (shown["remaining"], shown["refund"]["amount"]) == ("0.00", "400.00")
    assert shown["refund"]["confirmed_by"] == "operator:remittance-ops"
    assert shop.operator.send("GET", "/api/v1/ops/reconcile").json()["clean"] is True


def test_customers_see_that_a_record_was_assigned_or_released_never_by_whom(shop):
    shop.upload(day_of_transfers(shop))
    [unassigned] = queue(shop, "unassigned")
    shop.operator.send("POST", f"/api/v1/ops/remittances/{unassigned['id']}/assign",
                       {"uin": shop.uin})
    [held] = queue(shop, "held")
    shop.operator.send("POST", f"/api/v1/ops/remittances/{held['id']}/release")
    listing = shop.customer.send("GET", f"/api/v1/accounts/{shop.uin}/remittances").text
    one = shop.customer.send("GET", f"/api/v1/remittances/{held['id']}").json()
    assert "remittance-ops" not in listing and "operator:" not in listing
    for record in [*shop.customer.send("GET", f"/api/v1/accounts/{shop.uin}/remittances")
                   .json()["items"], one]:
        assert "assigned_by" not in record and "released_by" not in record
    items = {r["bank_reference"]: r for r in shop.customer.send(
        "GET", f"/api/v1/accounts/{shop.uin}/remittances").json()["items"]}
    assert (items["R-UNASSIGNED"]["assigned"], items["R-UNASSIGNED"]["released"]) == (True, False)
    assert (items["R-HELD"]["assigned"], items["R-HELD"]["released"]) == (False, True)
    assert (items["R-CREDIT"]["assigned"], items["R-CREDIT"]["released"]) == (False, False)
    # operators still see who did it
    seen = shop.operator.send("GET", f"/api/v1/remittances/{held['id']}").json()
    assert (seen["released_by"], seen["released"]) == ("operator:remittance-ops", True)
    # a payer name an operator registered for the account: the customer sees "operator"
    payers = f"/api/v1/accounts/{shop.uin}/remittance-payers"
    assert shop.operator.send("POST", payers, {"name": "上海代付有限公司"}).status_code == 201
    [payer] = shop.customer.send("GET", payers).json()["items"]
    assert payer["signed_by"] == "operator"
    assert shop.operator.send("GET", payers).json()["items"][0]["signed_by"] == \
        "operator:remittance-ops"


def test_customers_cannot_import_work_queues_or_see_others_records(shop):
    shop.upload(day_of_transfers(shop))
    credited = by_reference(shop, "R-CREDIT")
    before = shop.counts()
    refused = shop.upload(mt940([("X1", shop.number(), 100, ENTITY, "x")]), who=shop.customer)
    assert refused.status_code == 403 and shop.counts() == before
    assert shop.customer.send("GET", "/api/v1/ops/remittances",
                              query={"queue": "unassigned"}).status_code == 403
    assert shop.customer.send("GET", IMPORTS).status_code == 403
    assert shop.customer.send("POST", f"/api/v1/ops/remittances/{credited['id']}/release"
                              ).status_code == 403
    assert shop.other_customer.send("GET", f"/api/v1/remittances/{credited['id']}").status_code == 404
    assert shop.other_customer.send("GET", f"/api/v1/accounts/{shop.uin}/remittances").status_code == 403
    assert shop.other_customer.send(
        "POST", f"/api/v1/accounts/{shop.other}/remittances/{credited['id']}/reverify").status_code == 404


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("method, path, body, query, field", [
    ("POST", "/api/v1/accounts/{uin}/remittance-payers", {"name": ""}, None, "name"),
    ("POST", "/api/v1/accounts/{uin}/remittance-payers", {"name": 5}, None, "name"),
    ("POST", "/api/v1/accounts/{uin}/remittance-payers", {"name": "a", "x": 1}, None, "x"),
    ("POST", "/api/v1/accounts/{uin}/remittance-payers", {"name": "   "}, None, "payer_name"),
    ("GET", "/api/v1/accounts/{uin}/remittances", None, {"state": "lost"}, "state"),
    ("GET", "/api/v1/accounts/{uin}/remittances", None, {"limit": "0"}, "limit"),
    ("GET", "/api/v1/ops/remittances", None, {"queue": "everything"}, "queue"),
    ("GET", "/api/v1/ops/remittances", None, None, "queue"),
    ("POST", "/api/v1/ops/remittances/1/assign", {"uin": "1"}, None, "uin"),
    ("POST", "/api/v1/ops/remittances/1/assign", {}, None, "uin"),
    ("GET", "/api/v1/ops/remittance-pushes", None, {"outcome": "maybe"}, "outcome"),
])
def test_bad_input_names_the_field_and_writes_nothing(shop, method, path, body, query, field):
    before = shop.counts()
    who = shop.operator if "/ops/" in path else shop.customer
    response = who.send(method, path.format(uin=shop.uin), body, query)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == field and error["message_zh"] and error["message_en"]
    assert shop.counts() == before


def test_unknown_records_accounts_and_payers_are_404(shop):
    missing = shop.operator.send("POST", "/api/v1/ops/remittances/999999/release")
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "remittance_id"
    shop.upload(day_of_transfers(shop))
    [unassigned] = queue(shop, "unassigned")
    nobody = shop.operator.send("POST", f"/api/v1/ops/remittances/{unassigned['id']}/assign",
                                {"uin": 999_999_999})
    assert nobody.status_code == 404 and nobody.json()["error"]["field"] == "uin"
    gone = shop.customer.send("DELETE", f"/api/v1/accounts/{shop.uin}/remittance-payers/999999")
    assert gone.status_code == 404 and gone.json()["error"]["field"] == "payer_id"


def _bad_61(shop):
    return mt940([("B1", shop.number(), 100_00, ENTITY, "x")]).replace(
        b":86:", b":61:garbage\n:86:", 1)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>&lol3;</BkToCstmrStmt></Document>
"""


@pytest.mark.spec("RMT-2")
@pytest.mark.parametrize("case", ["bad-61", "entity-bomb", "mixed-currency", "unbalanced",
                                  "empty", "not-a-statement", "bad-format"])
def test_a_refused_statement_names_where_and_why_and_imports_nothing(shop, case):
    number = shop.number()
    good = [("G1", number, 100_00, ENTITY, "x")]
    second_usd = ":20:S2\n:25:755912345600001\n:28C:2/1\n:60F:C261201USD1,00\n:62F:C261201USD1,00\n-\n"
    data, query, field, says = {
        "bad-61": (_bad_61(shop), None, "mt940", ":61:"),
        "entity-bomb": (BILLION_LAUGHS, None, "camt.053", "DOCTYPE"),
        "mixed-currency": (mt940(good, tail=second_usd), None, "mt940", "mixes currencies"),
        "unbalanced": (mt940(good).replace(b"C261201CNY100,00", b"C261201CNY99,00"), None,
                       "mt940", "do not add up"),
        "empty": (b"", None, "statement", "empty"),
        "not-a-statement": (b"hello, world\n", None, "format", "unrecognised"),
        "bad-format": (mt940(good), {"format": "csv"}, "format", "unknown statement format"),
    }[case]
    before = shop.counts()
    response = shop.upload(data, query)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "StatementRefused" and error["field"].startswith(field.split(".")[0])
    assert says in error["message_en"] and error["message_zh"]
    if case == "bad-61":
        assert error["details"]["line"] == 6  # the garbage :61: after the first
    assert shop.counts() == before
    assert shop.customer.send("GET", f"/api/v1/accounts/{shop.uin}/balance").json()["cash"] == "0.00"


def test_a_camt_upload_imports_too(shop, tmp_path):
    from benchmarks import statement_files

    path = tmp_path / "s.xml"
    expected = statement_files.write_camt053(path, 6, "camt.053.001.02")
    response = shop.upload(path.read_bytes(), {"format": "camt.053"})
    assert response.status_code == 201, response.text
    summary = response.json()
    assert summary["lines"] == expected.credit_count
    assert summary["not_ours"] == expected.credit_count  # the generator's prefix is not ours


def test_the_upload_is_signed_over_the_streamed_bytes(shop):
    data = mt940([("S1", shop.number(), 100_00, ENTITY, "x")])
    url = f"http://{HOST}{IMPORTS}"
    from feecenter.auth import tc3

    headers = tc3.sign(shop.operator.key.secret_id, shop.operator.key.secret_key, method="POST",
                       host=HOST, path=IMPORTS, query="", body=data,
                       content_type="application/octet-stream",
                       timestamp=int(shop.rt.clock.now().timestamp()), service=tc3.SERVICE)
    before = shop.counts()
    tampered = shop.operator.http.post(url, content=data.replace(b"100,00", b"900,00"),
                                       headers=headers)
    assert tampered.status_code == 401 and shop.counts() == before
    accepted = shop.operator.http.post(url, content=data, headers=headers)
    assert accepted.status_code == 201 and accepted.json()["credited"] == 1


def test_only_the_statement_route_takes_bodies_up_to_the_parsers_limit(shop, monkeypatch):
    assert strict.body_limit(IMPORTS) == DEFAULT_MAX_BYTES == remittance_api.UPLOAD_LIMIT
    assert strict.body_limit("/api/v1/ops/remittances/1/assign") < DEFAULT_MAX_BYTES
    declared = shop.operator.http.post(f"http://{HOST}{IMPORTS}", content=b"x",
                                       headers={"content-length": str(DEFAULT_MAX_BYTES + 1)})
    assert declared.status_code == 413
    monkeypatch.setattr(remittance_api, "UPLOAD_LIMIT", 64)  # the streamed count decides too
    before = shop.counts()
    response = shop.upload(mt940([("L1", shop.number(), 100_00, ENTITY, "x")]))
    assert response.status_code == 413 and response.json()["error"]["field"] == "body"
    assert shop.counts() == before


@pytest.mark.parametrize("role, allowed", [("finance", True), ("admin", False),
                                           ("readonly", False)])
def test_remittances_need_the_finance_role(shop, role, allowed):
    from feecenter.accounts import service as accounts

    with transaction(shop.rt.engine) as conn:
        accounts.add_user(conn, shop.rt.clock, OPS, shop.uin, f"{role}-user", role, "subuser")
        key = auth.create_api_key(conn, shop.rt.clock, OPS, shop.uin, f"{role}-user")
    user = Signed(shop.rt, shop.customer.http, key)
    before = shop.counts()
    reads = [user.send("GET", f"/api/v1/accounts/{shop.uin}/{what}")
             for what in ("remittance-details", "remittances", "remittance-payers")]
    added = user.send("POST", f"/api/v1/accounts/{shop.uin}/remittance-payers", {"name": "代付方"})
    if allowed:
        assert [r.status_code for r in reads] == [200, 200, 200] and added.status_code == 201
    else:
        assert [r.status_code for r in reads + [added]] == [403] * 4
        assert shop.counts() == before


def test_an_unsigned_upload_is_refused_before_its_body_is_stored(shop, monkeypatch):
    async def never(request, spool):
        raise AssertionError("the body was spooled before the headers were checked")

    monkeypatch.setattr(remittance_api, "_spool", never)
    url = f"http://{HOST}{IMPORTS}"
    data = mt940([("U1", P1 + "0000000000", 100, ENTITY, "x")])
    unsigned = shop.operator.http.post(url, content=data)
    assert unsigned.status_code == 401
    assert unsigned.json()["error"]["details"]["reason"] == "InvalidAuthorization"
    wrong_key = shop.operator.http.post(url, content=data, headers={
        "Authorization": "TC3-HMAC-SHA256 Credential=AKIDnone/2026-01-01/billing/tc3_request, "
                         "SignedHeaders=content-type;host, Signature=" + "0" * 64,
        "X-TC-Timestamp": str(int(shop.rt.clock.now().timestamp())),
        "Content-Type": "application/octet-stream"})
    assert wrong_key.status_code == 401
