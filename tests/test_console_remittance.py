"""The console's corporate-remittance pages (RMT-1..8) on both backends, the app
in-process: the customer's 对公汇款 page (receiving details, also on 在线充值;
records with state and reason in the page's language; payer names registered
with the agreement ticked and removed; re-verification credited or review
failed) and the operator pages (a statement upload -> the import's summary, a
refused file with its line and nothing written, a re-import of duplicates, the
imports list, the queues, assigning and releasing). Bad input is a 4xx naming
the field with nothing written; every POST needs the session's CSRF token.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from feecenter.accounts import service as accounts
from feecenter.audit.tables import audit_log
from feecenter.db.engine import transaction
from feecenter.funds.tables import statement_entries
from feecenter.remittances import service as remittances
from feecenter.remittances.tables import remittance_imports, remittance_payers
from feecenter.remittances.tables import remittances as remittances_table
from tests.helpers import OPS, assert_reconciled, balance, row_counts
from tests.test_console_ops import (
    CUSTOMER_PASSWORD,
    client,
    csrf_of,
    customer_client,
    operator_client,
    world,  # noqa: F401 - fixture
)

ENTITY = "上海示例云计算有限公司"  # world's verified entity
PAYER = "深圳示例贸易有限公司"
FOREIGN_PAYEE = "6222000011112222"
WRITES = (remittances_table, remittance_imports, remittance_payers, statement_entries)
HUGE = "9" * 5000


# ---------------------------------------------------------------- a statement file

def statement(*lines: tuple[str, str, str, int, str], currency: str = "CNY") -> bytes:
    """An MT940 statement of credits (bank reference, number paid to, payer, fen, memo)
    to the platform's first account, balances adding up, with the platform bank's
    :86: convention (docs/statements.md)."""
    prefix = remittances.Settings.from_env().prefixes[0]
    body = [":20:CONSOLE1", f":25:{prefix}", ":28C:1/1", f":60F:C261201{currency}0,00"]
    for reference, payee, payer, fen, memo in lines:
        body += [f":61:2612011201C{fen // 100},{fen % 100:02d}NTRFNONREF//{reference}",
                 f":86:/PAYEE/{payee}/PAYER/{payer}/PACC/6222020200112233/PBNK/中国银行/MEMO/{memo}"]
    total = sum(line[3] for line in lines)
    body += [f":62F:C261201{currency}{total // 100},{total % 100:02d}", "-"]
    return ("\n".join(body) + "\n").encode()


def numbers(rt, uin: int) -> list[str]:
    with transaction(rt.engine) as conn:
        details = remittances.receiving_details(conn, rt.clock, OPS, uin)
    return [a["number"] for a in details["accounts"]]


def unknown_code_number(rt) -> str:
    """One of our prefixes with a code no account has (Luhn-valid: unknown, not invalid)."""
    from feecenter.remittances import rules
    return remittances.Settings.from_env().prefixes[0] + rules.code_from(123_456_789)


def upload(http, data: bytes, name: str = "statement.sta", token: str | None = None):
    page = http.get("/console/ops/remittances/imports")
    assert page.status_code == 200, page.text
    return http.post("/console/ops/remittances/imports",
                     data={"csrf_token": csrf_of(page.text) if token is None else token},
                     files={"statement": (name, data, "application/octet-stream")})


def counts(html: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'data-count="(\w+)">(\d+)<', html)}


def record(rt, reference: str) -> dict:
    with rt.engine.connect() as conn:
        return dict(conn.execute(select(remittances_table).where(
            remittances_table.c.bank_reference == reference)).mappings().one())


def customer(rt, lang: str = "zh-CN"):
    http = customer_client(rt)
    if lang == "en":
        http.cookies.set("fc_lang", "en", path="/console")
    return http


def post_form(http, path: str, page: str = "/console/remittance", **data):
    token = csrf_of(http.get(page).text)
    return http.post(path, data={"csrf_token": token, **data})


def field_error(html: str) -> str | None:
    found = re.search(r'data-error-field="(\w+)"', html)
    return found and found[1]


@pytest.fixture
def arrived(rt, world):  # noqa: F811 - world is a fixture
    """An operator imported a statement: one transfer to acme's number from an
    unregistered payer (pending signature), one from its entity (credited), one to
    our prefix with an unknown code (unassigned), one not ours, one with a restricted
    memo (held)."""
    own = numbers(rt, world)[0]
    data = statement(("R-PENDING", own, PAYER, 1_000_00, "货款"),
                     ("R-CREDIT", own, ENTITY, 250_50, "充值"),
                     ("R-UNKNOWN", unknown_code_number(rt), "广州示例有限公司", 300_00, "预付"),
                     ("R-FOREIGN", FOREIGN_PAYEE, "某公司", 12_00, "x"),
                     ("R-HELD", own, ENTITY, 500_00, "保证金"))
    response = upload(operator_client(rt), data)
    assert response.status_code == 200, response.text
    return response.text


# ---------------------------------------------------------------- receiving details (RMT-1, RMT-5)

@pytest.mark.spec("RMT-1", "RMT-5")
def test_the_remittance_and_recharge_pages_show_the_full_receiving_details(rt, world):  # noqa: F811
    http = customer(rt)
    page = http.get("/console/remittance")
    assert page.status_code == 200, page.text
    assert '<a href="/console/remittance" aria-current="page"' in page.text
    expected = numbers(rt, world)
    shown = re.findall(r"<code data-number>(\d+)</code>", page.text)
    assert shown == expected and all(len(n) == 25 for n in shown)
    settings = remittances.Settings.from_env()
    assert f"<dd data-payee>{settings.payee_entity}</dd>" in page.text
    for bank in settings.banks:
        assert f"<td>{bank.bank}</td><td>{bank.branch}</td>" in page.text
    recharge = http.get("/console/recharge").text
    assert re.findall(r"<code data-number>(\d+)</code>", recharge) == expected
    assert 'href="/console/remittance" data-remittance-link' in recharge
    assert 'href="/console/service-requests/new"' in page.text  # legacy forms and refunds: 工单


# ---------------------------------------------------------------- importing (RMT-2, RMT-3)

@pytest.mark.spec("RMT-2", "RMT-3", "RMT-4", "RMT-6", "RMT-8")
def test_an_uploaded_statement_is_imported_and_summarized(rt, world, arrived):  # noqa: F811
    assert counts(arrived) == {"lines": 5, "credited": 1, "unassigned": 1, "pending": 1,
                               "held": 1, "not_ours": 1, "duplicates": 0}
    assert "<code data-not-ours>R-FOREIGN</code>" in arrived
    assert 'data-fen="credited">¥250.50<' in arrived
    assert 'data-fen="new">¥2,062.50<' in arrived
    assert balance(rt, world).cash == 50_00 + 250_50
    assert record(rt, "R-PENDING")["state"] == "pending_signature"
    assert record(rt, "R-UNKNOWN")["state"] == "unassigned"
    assert_reconciled(rt)
    imports = operator_client(rt).get("/console/ops/remittances/imports").text
    assert len(re.findall(r"<tr data-import-row=", imports)) == 1
    assert "<td>mt940</td><td>operator:alice</td>" in imports


@pytest.mark.spec("RMT-2")
def test_the_same_statement_again_is_all_duplicates_and_credits_nothing(
        rt, world, arrived):  # noqa: F811
    own = numbers(rt, world)[0]
    again = upload(operator_client(rt), statement(
        ("R-PENDING", own, PAYER, 1_000_00, "货款"), ("R-CREDIT", own, ENTITY, 250_50, "充值"),
        ("R-UNKNOWN", unknown_code_number(rt), "广州示例有限公司", 300_00, "预付"),
        ("R-FOREIGN", FOREIGN_PAYEE, "某公司", 12_00, "x"), ("R-HELD", own, ENTITY, 500_00, "保证金")))
    assert again.status_code == 200, again.text
    assert counts(again.text)["duplicates"] == 5 and counts(again.text)["credited"] == 0
    assert balance(rt, world).cash == 50_00 + 250_50


@pytest.mark.spec("RMT-2")
@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_a_refused_file_names_its_line_and_writes_nothing(rt, world, lang):  # noqa: F811
    own = numbers(rt, world)[0]
    good = statement(("R-1", own, ENTITY, 100_00, "a"), ("R-2", own, ENTITY, 100_00, "b"))
    broken = good.replace(b":61:2612011201C100,00NTRFNONREF//R-2", b":61:garbage")
    http = operator_client(rt)
    if lang == "en":
        http.cookies.set("fc_lang", "en", path="/console")
    before = row_counts(rt, *WRITES)
    response = upload(http, broken)
    assert response.status_code == 400, response.text
    assert 'data-line="7"' in response.text
    notice = re.search(r'role="alert" data-error data-error-field="\w+">([^<]*)<', response.text)[1]
    assert ("第 7 行" in notice) if lang == "zh-CN" else ("line 7" in notice)
    assert row_counts(rt, *WRITES) == before
    # balances that do not add up, an empty upload, a file that is no statement
    for data, field, shown in (
            (good.replace(b":62F:C261201CNY200,00", b":62F:C261201CNY999,00"), "mt940",
             ("第 1 行", "line 1")),
            (b"", "statement", ("请选择对账单文件", "choose a statement file")),
            (b"hello\x00world", "format", ("无法识别", "unrecognised"))):
        response = upload(http, data)
        assert response.status_code == 400, response.text
        assert field_error(response.text) == field
        assert shown[0 if lang == "zh-CN" else 1] in response.text
    assert row_counts(rt, *WRITES) == before


def test_an_upload_without_the_sessions_csrf_token_is_refused(rt, world):  # noqa: F811
    own = numbers(rt, world)[0]
    before = row_counts(rt, *WRITES)
    response = upload(operator_client(rt), statement(("R-1", own, ENTITY, 100_00, "a")),
                      token="stale")
    assert response.status_code == 403
    assert row_counts(rt, *WRITES) == before


def test_a_customer_session_opens_no_operator_remittance_page(rt, world):  # noqa: F811
    http = customer(rt)
    for path in ("/console/ops/remittances", "/console/ops/remittances/imports"):
        response = http.get(path)
        assert response.status_code == 303 and "/console/ops/login" in response.headers["location"]


# ---------------------------------------------------------------- queues (RMT-3, RMT-6, RMT-7)

@pytest.mark.spec("RMT-3", "RMT-4")
def test_an_operator_assigns_an_unassigned_record_to_the_account(rt, world, arrived):  # noqa: F811
    http = operator_client(rt)
    queue = http.get("/console/ops/remittances?queue=unassigned").text
    unknown = record(rt, "R-UNKNOWN")
    assert f'<tr data-remittance="{unknown["id"]}"' in queue and "¥300.00" in queue
    assert 'data-state="unassigned">待分配<' in queue
    before = row_counts(rt, *WRITES)
    for uin, field, status in (("abc", "uin", 400), ("1\x002", "uin", 400), (HUGE, "uin", 400),
                               ("999999999", "uin", 404)):
        response = post_form(http, f"/console/ops/remittances/{unknown['id']}/assign",
                             "/console/ops/remittances", uin=uin)
        assert response.status_code == status, (uin, response.text)
        assert field_error(response.text) == field
    assert row_counts(rt, *WRITES) == before
    done = post_form(http, f"/console/ops/remittances/{unknown['id']}/assign",
                     "/console/ops/remittances", uin=str(world))
    assert done.status_code == 303, done.text
    assigned = record(rt, "R-UNKNOWN")
    assert (assigned["uin"], assigned["state"]) == (world, "pending_signature")
    again = post_form(http, f"/console/ops/remittances/{unknown['id']}/assign",
                      "/console/ops/remittances", uin=str(world))
    assert again.status_code == 409 and field_error(again.text) == "remittance_id"
    with rt.engine.connect() as conn:
        assert conn.execute(select(audit_log.c.actor).where(
            audit_log.c.action == "remittance_assign")).scalar_one() == "operator:alice"


@pytest.mark.spec("RMT-6")
def test_an_operator_releases_a_held_record_and_it_is_verified(rt, world, arrived):  # noqa: F811
    http = operator_client(rt)
    held = record(rt, "R-HELD")
    queue = http.get("/console/ops/remittances?queue=held").text
    assert f'action="/console/ops/remittances/{held["id"]}/release"' in queue
    assert "保证金" in queue  # the reason
    response = post_form(http, f"/console/ops/remittances/{held['id']}/release",
                         "/console/ops/remittances?queue=held", queue="held")
    assert response.status_code == 303, response.text
    assert record(rt, "R-HELD")["state"] == "credited"  # the payer is the entity
    assert balance(rt, world).cash == 50_00 + 250_50 + 500_00
    assert_reconciled(rt)


@pytest.mark.spec("RMT-7")
def test_foreign_currency_has_no_release_and_a_crafted_one_is_refused(rt, world):  # noqa: F811
    own = numbers(rt, world)[0]
    response = upload(operator_client(rt), statement(("R-USD", own, ENTITY, 100_00, "x"),
                                                     currency="USD"))
    assert counts(response.text)["held"] == 1
    http = operator_client(rt)
    held = record(rt, "R-USD")
    queue = http.get("/console/ops/remittances?queue=held").text
    assert f'/remittances/{held["id"]}/release' not in queue and "USD 10000" in queue
    refused = post_form(http, f"/console/ops/remittances/{held['id']}/release",
                        "/console/ops/remittances?queue=held")
    assert refused.status_code == 409 and field_error(refused.text) == "currency"
    assert record(rt, "R-USD")["state"] == "held"


@pytest.mark.parametrize("queue", list(remittances.QUEUES))
def test_every_queue_lists_its_records(rt, world, arrived, queue):  # noqa: F811
    page = operator_client(rt).get(f"/console/ops/remittances?queue={queue}")
    assert page.status_code == 200, page.text
    expected = {"unassigned": ["R-UNKNOWN"], "pending": ["R-PENDING"], "held": ["R-HELD"],
                "review_failed": [], "flagged": [], "not_ours": ["R-FOREIGN"], "legacy": [],
                "refunded": []}[queue]
    shown = re.findall(r"<td>(R-[A-Z]+)</td>", page.text)
    assert shown == expected


@pytest.mark.parametrize(("query", "field"), [("queue=bogus", "queue"), (f"page={HUGE}", "page"),
                                              ("page=0", "page"), ("queue=%00", "queue")])
def test_a_bad_queue_or_page_is_a_field_error(rt, world, query, field):  # noqa: F811
    response = operator_client(rt).get(f"/console/ops/remittances?{query}")
    assert response.status_code == 400 and field_error(response.text) == field


# ---------------------------------------------------------------- the customer's side (RMT-4/5)

@pytest.mark.spec("RMT-4", "RMT-5")
@pytest.mark.parametrize(("lang", "state", "reason"), [
    ("zh-CN", "待签署", "未登记为付款人"), ("en", "Pending signature", "nor a registered payer")])
def test_the_customer_sees_the_pending_record_with_its_state_and_reason(
        rt, world, arrived, lang, state, reason):  # noqa: F811
    page = customer(rt, lang).get("/console/remittance").text
    pending = record(rt, "R-PENDING")
    row = re.search(rf'<tr data-remittance="{pending["id"]}".*?</tr>', page, re.S)[0]
    assert f'data-state="pending_signature">{state}<' in row
    assert "¥1,000.00" in row and reason in row
    assert ("nor a registered payer" not in row) if lang == "zh-CN" else ("未登记" not in row)
    assert f"/console/remittance/records/{pending['id']}/reverify" in row
    credited = re.search(rf'<tr data-remittance="{record(rt, "R-CREDIT")["id"]}".*?</tr>', page,
                         re.S)[0]
    assert "reverify" not in credited and 'data-state="credited"' in credited


@pytest.mark.spec("RMT-4", "RMT-5", "RMT-8")
def test_register_the_payer_then_reverification_credits_the_record(
        rt, world, arrived):  # noqa: F811
    http = customer(rt)
    registered = post_form(http, "/console/remittance/payers", payer_name=PAYER, agree="1")
    assert registered.status_code == 303, registered.text
    page = http.get("/console/remittance").text
    assert f'<td data-col="name">{PAYER}</td>' in page
    pending = record(rt, "R-PENDING")
    asked = post_form(http, f"/console/remittance/records/{pending['id']}/reverify")
    assert asked.status_code == 303
    assert asked.headers["location"] == f"/console/remittance?checked={pending['id']}"
    result = http.get(asked.headers["location"]).text
    assert f'data-result="{pending["id"]}" data-result-state="credited"' in result
    assert "<strong>已充值</strong>" in result
    assert record(rt, "R-PENDING")["state"] == "credited"
    assert balance(rt, world).cash == 50_00 + 250_50 + 1_000_00
    assert_reconciled(rt)
    twice = post_form(http, f"/console/remittance/records/{pending['id']}/reverify")
    assert twice.status_code == 409 and field_error(twice.text) == "remittance_id"
    assert balance(rt, world).cash == 50_00 + 250_50 + 1_000_00


@pytest.mark.spec("RMT-5")
def test_reverification_without_the_right_payer_fails_review_with_the_reason(
        rt, world, arrived):  # noqa: F811
    http = customer(rt, "en")
    pending = record(rt, "R-PENDING")
    asked = post_form(http, f"/console/remittance/records/{pending['id']}/reverify")
    result = http.get(asked.headers["location"]).text
    assert 'data-result-state="review_failed"' in result
    assert "<strong>Review failed</strong>" in result
    assert f'review failed: the payer name on the bank side, "{PAYER}"' in result.replace(
        "&#34;", '"')
    assert balance(rt, world).cash == 50_00 + 250_50
    # resubmittable: register the payer, ask again
    post_form(http, "/console/remittance/payers", payer_name=PAYER, agree="1")
    post_form(http, f"/console/remittance/records/{pending['id']}/reverify")
    assert record(rt, "R-PENDING")["state"] == "credited"


@pytest.mark.spec("RMT-5")
def test_registering_needs_the_agreement_ticked_and_a_payer_can_be_removed(rt, world):  # noqa: F811
    http = customer(rt)
    before = row_counts(rt, *WRITES)
    refused = post_form(http, "/console/remittance/payers", payer_name=PAYER)
    assert refused.status_code == 400 and field_error(refused.text) == "agree"
    assert "请阅读并同意第三方付款协议" in refused.text
    assert f'value="{PAYER}"' in refused.text  # what was typed is kept
    for name in ("", "  ", "a\x00b", "x" * 201):
        response = post_form(http, "/console/remittance/payers", payer_name=name, agree="1")
        assert response.status_code == 400 and field_error(response.text) == "payer_name", name
    assert row_counts(rt, *WRITES) == before
    post_form(http, "/console/remittance/payers", payer_name=PAYER, agree="1")
    with rt.engine.connect() as conn:
        payer = conn.execute(select(remittance_payers)).mappings().one()
    assert payer["signed_by"] == f"user:acme-cloud@{world}"  # who signed the agreement
    removed = post_form(http, f"/console/remittance/payers/{payer['id']}/remove")
    assert removed.status_code == 303
    assert f'<td data-col="name">{PAYER}</td>' not in http.get("/console/remittance").text
    again = post_form(http, f"/console/remittance/payers/{payer['id']}/remove")
    assert again.status_code == 404 and field_error(again.text) == "payer_id"


@pytest.mark.parametrize(("path", "field"), [
    ("/console/remittance/records/abc/reverify", "remittance_id"),
    (f"/console/remittance/records/{HUGE}/reverify", "remittance_id"),
    ("/console/remittance/records/%00/reverify", "remittance_id"),
    ("/console/remittance/records/999999/reverify", "remittance_id"),
    ("/console/remittance/payers/%00/remove", "payer_id"),
    (f"/console/remittance/payers/{HUGE}/remove", "payer_id"),
])
def test_hostile_ids_are_field_errors_not_500(rt, world, path, field):  # noqa: F811
    response = post_form(customer(rt), path)
    assert 400 <= response.status_code < 500 and field_error(response.text) == field


@pytest.mark.parametrize("query", [f"page={HUGE}", "page=0", "page=%00", "checked=%00",
                                   f"checked={HUGE}"])
def test_a_bad_page_or_checked_record_is_a_field_error(rt, world, query):  # noqa: F811
    response = customer(rt).get(f"/console/remittance?{query}")
    assert response.status_code == 400, response.text
    assert field_error(response.text) in ("page", "checked")


def test_another_accounts_record_is_neither_shown_nor_reverified(rt, world, arrived):  # noqa: F811
    from tests.helpers import new_account
    from tests.test_console import set_password
    other = new_account(rt, "other-co")
    set_password(rt, other, None, CUSTOMER_PASSWORD)
    http = client(rt)
    form = http.get("/console/login")
    http.post("/console/login", data={"account": "other-co", "login": "other-co",
                                      "password": CUSTOMER_PASSWORD,
                                      "csrf_token": csrf_of(form.text), "next": "/console/"})
    pending = record(rt, "R-PENDING")
    assert "R-PENDING" not in http.get("/console/remittance").text
    refused = post_form(http, f"/console/remittance/records/{pending['id']}/reverify")
    assert refused.status_code == 404
    assert http.get(f"/console/remittance?checked={pending['id']}").status_code == 404
    assert record(rt, "R-PENDING")["state"] == "pending_signature"


def test_records_are_paged_twenty_at_a_time(rt, world):  # noqa: F811
    own = numbers(rt, world)[0]
    upload(operator_client(rt), statement(*[(f"P-{n:02d}", own, PAYER, 1_00 + n, "x")
                                            for n in range(25)]))
    http = customer(rt)
    first = http.get("/console/remittance").text
    assert len(re.findall(r"<tr data-remittance=", first)) == 20
    assert "共 25 笔汇款" in first and 'rel="next" href="/console/remittance?page=2#records"' in first
    second = http.get("/console/remittance?page=2").text
    assert re.findall(r"<td>(P-\d+)</td>", second) == [f"P-{n:02d}" for n in range(4, -1, -1)]


def test_a_readonly_user_is_refused_with_the_services_message(rt, world):  # noqa: F811
    from tests.test_console import set_password
    with transaction(rt.engine) as conn:
        accounts.add_user(conn, rt.clock, OPS, world, "acme-readonly", "readonly")
    set_password(rt, world, "acme-readonly", CUSTOMER_PASSWORD)
    http = client(rt)
    form = http.get("/console/login")
    http.post("/console/login", data={"account": "acme-cloud", "login": "acme-readonly",
                                      "password": CUSTOMER_PASSWORD,
                                      "csrf_token": csrf_of(form.text), "next": "/console/"})
    page = http.get("/console/remittance")
    assert page.status_code == 403 and "data-denied" in page.text
    assert "<code data-number>" not in page.text
    before = row_counts(rt, *WRITES)
    token = csrf_of(page.text)
    response = http.post("/console/remittance/payers", data={"csrf_token": token,
                                                            "payer_name": PAYER, "agree": "1"})
    assert response.status_code == 403
    assert row_counts(rt, *WRITES) == before


def test_customer_posts_without_the_sessions_csrf_token_are_refused(
        rt, world, arrived):  # noqa: F811
    http = customer(rt)
    pending = record(rt, "R-PENDING")
    before = row_counts(rt, *WRITES)
    for path, data in (("/console/remittance/payers", {"payer_name": PAYER, "agree": "1"}),
                       (f"/console/remittance/records/{pending['id']}/reverify", {})):
        assert http.post(path, data={"csrf_token": "stale", **data}).status_code == 403
    assert row_counts(rt, *WRITES) == before


# ---------------------------------------------------------------- what customers see of operators

def test_the_customer_page_never_names_the_operator_who_released_or_signed(rt, world, arrived):  # noqa: F811
    http = operator_client(rt)
    held = record(rt, "R-HELD")
    assert post_form(http, f"/console/ops/remittances/{held['id']}/release",
                     "/console/ops/remittances?queue=held", queue="held").status_code == 303
    assert record(rt, "R-HELD")["released_by"] == "operator:alice"
    with transaction(rt.engine) as conn:  # an operator registered a payer for the account
        remittances.register_payer(conn, rt.clock, OPS, world, PAYER)
    for lang, shown in (("zh-CN", "平台运营人员"), ("en", "Platform operator")):
        page = customer(rt, lang).get("/console/remittance")
        assert page.status_code == 200, page.text
        assert "operator:" not in page.text and "alice" not in page.text
        assert f'<td data-col="signed-by">{shown}</td>' in page.text


# ---------------------------------------------------------------- legacy remainder (RMT-10, RMT-11)

@pytest.mark.spec("RMT-10", "RMT-11")
def test_an_operator_refunds_what_the_legacy_forms_left_from_the_legacy_queue(rt, world):  # noqa: F811
    from datetime import date

    from feecenter.remittances import cases
    prefix = remittances.Settings.from_env().prefixes[0]
    upload(operator_client(rt), statement(("R-LEGACY", prefix, PAYER, 1_000_00, "货款")))
    legacy = record(rt, "R-LEGACY")
    with transaction(rt.engine) as conn:
        cases.credit_legacy_form(conn, rt.clock, OPS, world, request_id=1, amount=700_00,
                                 payer_name=PAYER, value_date=date(2026, 12, 1))
    http = operator_client(rt)
    queue = http.get("/console/ops/remittances?queue=legacy").text
    assert f'action="/console/ops/remittances/{legacy["id"]}/refund-remainder"' in queue
    assert "¥300.00" in queue and "data-remaining" in queue
    path = f"/console/ops/remittances/{legacy['id']}/refund-remainder"
    good = {"holder": PAYER, "bank_account": "6222020200112233", "bank": "中国银行",
            "reason": "多付"}
    before = row_counts(rt, *WRITES)
    for change, field in (({"bank_account": "12ab"}, "bank_account"), ({"bank": ""}, "bank"),
                          ({"reason": " "}, "reason"), ({"holder": HUGE}, "holder")):
        response = post_form(http, path, "/console/ops/remittances?queue=legacy",
                             **{**good, **change})
        assert response.status_code == 400, (change, response.text)
        assert field_error(response.text) == field
    assert row_counts(rt, *WRITES) == before
    done = post_form(http, path, "/console/ops/remittances?queue=legacy", **good)
    assert done.status_code == 303, done.text
    queue = http.get("/console/ops/remittances?queue=legacy").text
    assert "data-remainder-refunded" in queue and 'refund-remainder"' not in queue
    again = post_form(http, path, "/console/ops/remittances?queue=legacy", **good)
    assert again.status_code == 409 and field_error(again.text) == "remittance_id"
    assert balance(rt, world).cash == 50_00 + 700_00
    assert_reconciled(rt)
