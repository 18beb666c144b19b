"""The operator console (/console/ops): its login and sessions apart from the
customers', the account search and page, adjustments (confirmation, once per
form, the customer's balance equal to the REST API's), credit, field errors in
the page's language with nothing written, CSRF, and the platform pages (audit
log, reconciliation, jobs, arrears cases, catalog).

Every test runs on SQLite and PostgreSQL (the ``rt`` fixture) with the app
in-process (Starlette's TestClient) on the test's FixedClock.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import insert
from starlette.testclient import TestClient

from feecenter.api.app import create_app
from feecenter.audit.tables import audit_log
from feecenter.auth import operator_sessions, sessions
from feecenter.auth import service as auth
from feecenter.auth.tables import operator_sessions as operator_sessions_table
from feecenter.clock import db_time
from feecenter.db.engine import transaction
from feecenter.funds.tables import statement_entries
from feecenter.jobs.tables import job_runs
from feecenter.ledger.tables import ledger_transactions
from tests.helpers import (
    OPS,
    add_cash,
    api_key,
    assert_reconciled,
    load_sample_catalog,
    new_account,
    row_counts,
    run_threads,
)
from tests.rest_harness import HOST, Signed

PASSWORD = "operator-horse-battery"
CUSTOMER_PASSWORD = "customer-horse-battery"
USCC = "91310000MA1FL4TQ9U"
WRITES = (statement_entries, ledger_transactions, audit_log)


@pytest.fixture
def world(rt):
    """Operator alice with a console password; acme-cloud (enterprise, ¥50.00 cash) whose
    owner has a console password."""
    with transaction(rt.engine) as conn:
        auth.create_operator(conn, rt.clock, OPS, "alice")
        operator_sessions.set_password(conn, rt.clock, OPS, "alice", PASSWORD)
    uin = new_account(rt, "acme-cloud", enterprise_name="上海示例云计算有限公司", uscc=USCC)
    add_cash(rt, uin, 50_00)
    with transaction(rt.engine) as conn:
        sessions.set_password(conn, rt.clock, OPS, uin, None, CUSTOMER_PASSWORD)
    return uin


def client(rt) -> TestClient:
    return TestClient(create_app(rt), follow_redirects=False)


def with_cookie(rt, name: str, value: str) -> TestClient:
    """A new client presenting ``value`` as the cookie ``name`` on every console path."""
    http = client(rt)
    http.cookies.set(name, value, domain="testserver.local", path="/console")
    return http


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def ops_log_in(http: TestClient, name: str = "alice", password: str = PASSWORD,
               next_path: str = "/console/ops/"):
    form = http.get(f"/console/ops/login?next={next_path}")
    assert form.status_code == 200
    return http.post("/console/ops/login", data={"name": name, "password": password,
                                                  "csrf_token": csrf_of(form.text),
                                                  "next": next_path})


def operator_client(rt) -> TestClient:
    http = client(rt)
    response = ops_log_in(http)
    assert response.status_code == 303, response.text
    return http


def customer_client(rt) -> TestClient:
    http = client(rt)
    form = http.get("/console/login")
    response = http.post("/console/login", data={
        "account": "acme-cloud", "login": "acme-cloud", "password": CUSTOMER_PASSWORD,
        "csrf_token": csrf_of(form.text), "next": "/console/"})
    assert response.status_code == 303, response.text
    return http


def adjustment_form(http: TestClient, uin: int) -> dict:
    """The account page's adjustment form fields (its idempotency key included)."""
    page = http.get(f"/console/ops/accounts/{uin}")
    assert page.status_code == 200, page.text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text).group(1)
    return {"idempotency_key": key, "csrf_token": csrf_of(page.text)}


def confirm(http: TestClient, uin: int, **fields):
    return http.get(f"/console/ops/accounts/{uin}/adjust", params=fields)


def figures(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-field="(\w+)">([^<]*)<', html))


# ---------------------------------------------------------------- login and sessions

def test_operator_logs_in_is_throttled_and_logs_out(rt, world):
    http = client(rt)
    first = http.get("/console/ops/audit")
    assert first.status_code == 303
    assert first.headers["location"] == "/console/ops/login?next=/console/ops/audit"
    wrong = ops_log_in(http, password="not-the-password")
    assert wrong.status_code == 401 and "运营人员名称或密码错误" in wrong.text
    unknown = ops_log_in(http, name="mallory")
    assert unknown.status_code == 401 and "运营人员名称或密码错误" in unknown.text

    response = ops_log_in(http, next_path="/console/ops/audit")
    assert response.status_code == 303 and response.headers["location"] == "/console/ops/audit"
    cookie = response.headers["set-cookie"]
    assert "fc_ops_session=" in cookie and "HttpOnly" in cookie and "Path=/console/ops" in cookie
    page = http.get("/console/ops/audit")
    assert page.status_code == 200 and "<h1>审计日志</h1>" in page.text
    assert "alice" in page.text and 'href="/console/ops/jobs"' in page.text
    assert http.post("/console/ops/logout", data={"csrf_token": csrf_of(page.text)}
                     ).status_code == 303
    assert http.get("/console/ops/audit").status_code == 303
    assert row_counts(rt, operator_sessions_table) == (0,)

    # five failures lock the operator for 15 minutes, right password or not
    for _ in range(5):
        assert ops_log_in(http, password="wrong-password").status_code == 401
    locked = ops_log_in(http)
    assert locked.status_code == 429 and "登录失败次数过多" in locked.text
    rt.clock.advance(minutes=16)
    assert ops_log_in(http).status_code == 303


def test_operator_sessions_expire_idle_and_absolute(rt, world):
    http = operator_client(rt)
    assert http.get("/console/ops/").status_code == 200
    rt.clock.advance(minutes=31)
    gone = http.get("/console/ops/")
    assert gone.status_code == 303 and "/console/ops/login" in gone.headers["location"]

    busy = operator_client(rt)  # used every 20 minutes: still ends 12 hours after login
    for _ in range(35):
        rt.clock.advance(minutes=20)
        assert busy.get("/console/ops/").status_code == 200
    rt.clock.advance(minutes=21)
    late = busy.get("/console/ops/", headers={"HX-Request": "true"})
    assert late.status_code == 204 and late.headers["HX-Redirect"].startswith("/console/ops/login")
    assert row_counts(rt, operator_sessions_table) == (0,)


def test_a_customer_session_opens_no_operator_page_and_the_reverse(rt, world):
    before = row_counts(rt, *WRITES)
    customer = customer_client(rt)
    assert customer.get("/console/").status_code == 200
    for path in ("/console/ops/", f"/console/ops/accounts/{world}", "/console/ops/audit",
                 "/console/ops/jobs", "/console/ops/catalog"):
        refused = customer.get(path)
        assert refused.status_code == 303, path
        assert refused.headers["location"].startswith("/console/ops/login")
    token = customer.cookies.get("fc_session")
    assert with_cookie(rt, "fc_session", token).get("/console/").status_code == 200
    posted = with_cookie(rt, "fc_ops_session", token).post(
        f"/console/ops/accounts/{world}/adjust", data={"sub_account": "cash", "amount": "1.00", "reason": "x",
                                   "idempotency_key": "k", "csrf_token": "x"})
    assert posted.status_code == 303 and "/console/ops/login" in posted.headers["location"]

    operator = operator_client(rt)
    assert operator.get("/console/").status_code == 303  # its cookie is not a customer's
    ops_token = operator.cookies.get("fc_ops_session")
    assert with_cookie(rt, "fc_ops_session", ops_token).get("/console/ops/").status_code == 200
    as_customer = with_cookie(rt, "fc_session", ops_token).get("/console/")
    assert as_customer.status_code == 303
    assert as_customer.headers["location"].startswith("/console/login")
    assert row_counts(rt, *WRITES) == before


# ---------------------------------------------------------------- search and account page

@pytest.mark.parametrize("query", ["acme", "上海示例", USCC.lower(), "UIN"])
def test_the_search_finds_an_account_by_uin_name_entity_and_uscc(rt, world, query):
    new_account(rt, "other-shop")
    http = operator_client(rt)
    found = http.get("/console/ops/", params={"q": str(world) if query == "UIN" else query})
    assert found.status_code == 200
    assert re.findall(r'<tr data-uin="(\d+)">', found.text) == [str(world)]
    assert "上海示例云计算有限公司" in found.text
    none = http.get("/console/ops/", params={"q": "no-such-thing"})
    assert "data-empty" in none.text and 'data-uin="' not in none.text
    bad = http.get("/console/ops/", params={"q": "x" * 101})
    assert bad.status_code == 400 and 'data-error-field="q"' in bad.text


def test_the_account_page_shows_balances_state_credit_and_entries(rt, world):
    http = operator_client(rt)
    page = http.get(f"/console/ops/accounts/{world}")
    assert page.status_code == 200
    assert figures(page.text)["cash"] == "¥50.00"
    assert 'data-state="normal"' in page.text and "正常" in page.text
    assert 'data-type="adj_refund"' in page.text and "test top-up" in page.text
    assert 'name="credit_limit" value="0.00"' in page.text
    missing = http.get("/console/ops/accounts/999999999999")
    assert missing.status_code == 404 and 'data-error-field="uin"' in missing.text
    malformed = http.get("/console/ops/accounts/abc")
    assert malformed.status_code == 400 and 'data-error-field="uin"' in malformed.text


# ---------------------------------------------------------------- adjustments

@pytest.mark.spec("BAL-1", "BAL-2", "BAL-6")
def test_an_adjustment_confirmed_once_appears_in_the_customer_balance(rt, world):
    http = operator_client(rt)
    form = adjustment_form(http, world)
    before = row_counts(rt, *WRITES)
    review = confirm(http, world, sub_account="cash", amount="100.00", reason="补偿 / goodwill",
                     idempotency_key=form["idempotency_key"])
    assert review.status_code == 200 and "确认调账" in review.text
    assert "¥100.00" in review.text and row_counts(rt, *WRITES) == before  # nothing written
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', review.text))
    assert fields["idempotency_key"] == form["idempotency_key"]

    made = http.post(f"/console/ops/accounts/{world}/adjust", data=fields)
    assert made.status_code == 200 and "data-repeat" not in made.text
    assert figures(made.text)["cash"] == "¥150.00"
    again = http.post(f"/console/ops/accounts/{world}/adjust", data=fields)  # a double submit
    assert again.status_code == 200 and "data-repeat" in again.text
    assert figures(again.text)["cash"] == "¥150.00"
    assert row_counts(rt, statement_entries)[0] == before[0] + 1
    assert_reconciled(rt, world)

    # the customer sees it; the figures are the REST API's
    customer = customer_client(rt)
    overview = customer.get("/console/")
    api = Signed(rt, TestClient(create_app(rt), base_url=f"http://{HOST}"),
                 api_key(rt, world)).send("GET", f"/api/v1/accounts/{world}/balance").json()
    shown = {k: v.replace("¥", "").replace(",", "") for k, v in figures(overview.text).items()}
    assert shown["cash"] == api["cash"] == "150.00"
    assert shown["available"] == api["available"]
    ledger = customer.get("/console/transactions")
    assert "补偿 / goodwill" in ledger.text and "¥100.00" in ledger.text

    with rt.engine.connect() as conn:
        audited = conn.execute(audit_log.select().where(audit_log.c.action == "adjust")
                               .order_by(audit_log.c.id.desc())).mappings().first()
    assert audited["actor"] == "operator:alice"


@pytest.mark.parametrize("lang,message", [("zh-CN", "金额格式错误"), ("en", "malformed amount")])
def test_bad_adjustment_input_is_a_field_error_in_the_page_language(rt, world, lang, message):
    http = operator_client(rt)
    http.cookies.set("fc_lang", lang, path="/console")
    form = adjustment_form(http, world)
    before = row_counts(rt, *WRITES)
    cases = [({"amount": "12.345"}, "amount", message),
             ({"amount": "abc"}, "amount", message),
             ({"amount": "0"}, "amount", None),
             ({"reason": "  "}, "reason", None),
             ({"reason": "a\x00b"}, "reason", None),
             ({"sub_account": "income"}, "sub_account", None),
             ({"idempotency_key": ""}, "idempotency_key", None)]
    for change, field, text in cases:
        fields = {"sub_account": "cash", "amount": "10.00", "reason": "why",
                  "idempotency_key": form["idempotency_key"], **change}
        for response in (confirm(http, world, **fields),
                         http.post(f"/console/ops/accounts/{world}/adjust",
                                   data={**fields, "csrf_token": form["csrf_token"]})):
            assert response.status_code == 400, (change, response.text)
            assert f'data-error-field="{field}"' in response.text, change
            assert f'lang="{lang}"' in response.text
            if text:
                assert text in response.text
    bad_uin = http.post("/console/ops/accounts/12x/adjust", data={
        "sub_account": "cash", "amount": "1.00", "reason": "why",
        "idempotency_key": form["idempotency_key"], "csrf_token": form["csrf_token"]})
    assert bad_uin.status_code == 400 and 'data-error-field="uin"' in bad_uin.text
    assert row_counts(rt, *WRITES) == before


def test_a_form_without_the_session_csrf_token_is_refused(rt, world):
    http = operator_client(rt)
    form = adjustment_form(http, world)
    before = row_counts(rt, *WRITES)
    fields = {"sub_account": "cash", "amount": "10.00", "reason": "why",
              "idempotency_key": form["idempotency_key"]}
    for token in ("", "stale-token"):
        refused = http.post(f"/console/ops/accounts/{world}/adjust",
                            data={**fields, "csrf_token": token})
        assert refused.status_code == 403, token
        assert http.post(f"/console/ops/accounts/{world}/credit", data={
            "credit_limit": "10.00", "csrf_token": token}).status_code == 403
        assert http.post("/console/ops/jobs/retry", data={
            "job": "j", "period": "p", "csrf_token": token}).status_code == 403
    # a customer session's token is not the operator session's
    customer_token = csrf_of(customer_client(rt).get("/console/").text)
    assert http.post(f"/console/ops/accounts/{world}/adjust",
                     data={**fields, "csrf_token": customer_token}).status_code == 403
    # the login form's double-submit token
    assert client(rt).post("/console/ops/login", data={
        "name": "alice", "password": PASSWORD, "csrf_token": "x"}).status_code == 403
    assert row_counts(rt, *WRITES) == before


@pytest.mark.postgres_only
@pytest.mark.spec("BAL-6")
def test_eight_concurrent_submits_of_one_form_adjust_once(rt, world):
    http = operator_client(rt)
    form = adjustment_form(http, world)
    cookie = http.cookies.get("fc_ops_session")
    fields = {"sub_account": "cash", "amount": "100.00", "reason": "together", **form}
    statuses = []

    def submit(_):
        response = with_cookie(rt, "fc_ops_session", cookie).post(
            f"/console/ops/accounts/{world}/adjust", data=fields)
        statuses.append((response.status_code, "data-repeat" in response.text))

    assert run_threads(8, submit) == []
    assert sorted(statuses) == [(200, False)] + [(200, True)] * 7
    page = http.get(f"/console/ops/accounts/{world}")
    assert figures(page.text)["cash"] == "¥150.00"
    assert_reconciled(rt, world)


# ---------------------------------------------------------------- credit

@pytest.mark.spec("BAL-7")
def test_the_operator_sets_the_credit_limit(rt, world):
    http = operator_client(rt)
    page = http.get(f"/console/ops/accounts/{world}")
    saved = http.post(f"/console/ops/accounts/{world}/credit", data={
        "credit_limit": "500.00", "temp_credit": "0", "csrf_token": csrf_of(page.text)})
    assert saved.status_code == 303
    shown = http.get(saved.headers["location"])
    assert figures(shown.text)["credit_limit"] == "¥500.00" and "data-saved" in shown.text
    api = Signed(rt, TestClient(create_app(rt), base_url=f"http://{HOST}"),
                 api_key(rt, world)).send("GET", f"/api/v1/accounts/{world}/balance").json()
    assert api["credit_limit"] == "500.00"
    before = row_counts(rt, *WRITES)
    bad = http.post(f"/console/ops/accounts/{world}/credit", data={
        "credit_limit": "-5", "csrf_token": csrf_of(page.text)})
    assert bad.status_code == 400 and 'data-error-field="credit_limit"' in bad.text
    no_end = http.post(f"/console/ops/accounts/{world}/credit", data={
        "credit_limit": "5.00", "temp_credit": "100.00", "csrf_token": csrf_of(page.text)})
    assert no_end.status_code == 400 and 'data-error-field="temp_credit_end"' in no_end.text
    assert "临时额度必须有结束时间" in no_end.text
    assert row_counts(rt, *WRITES) == before


# ---------------------------------------------------------------- platform pages

def test_the_audit_log_filters_by_account_action_and_actor(rt, world):
    other = new_account(rt, "other-shop")
    http = operator_client(rt)
    everything = http.get("/console/ops/audit")
    assert f">{other}</a>" in everything.text and f">{world}</a>" in everything.text
    mine = http.get("/console/ops/audit", params={"uin": str(world), "action": "adjust"})
    actions = re.findall(r'data-audit-action="(\w+)"', mine.text)
    assert actions == ["adjust"] and f">{other}</a>" not in mine.text
    by = http.get("/console/ops/audit", params={"by": "OPERATOR:TEST"})
    assert set(re.findall(r'data-audit-action="(\w+)"', by.text)) >= {"create_account", "adjust"}
    assert "data-empty" in http.get("/console/ops/audit", params={"by": "nobody"}).text
    bad = http.get("/console/ops/audit", params={"uin": "1e5"})
    assert bad.status_code == 400 and 'data-error-field="uin"' in bad.text


@pytest.mark.spec("BAL-6")
def test_reconciliation_runs_on_demand(rt, world):
    http = operator_client(rt)
    assert "data-clean" not in http.get("/console/ops/reconcile").text  # not run yet
    clean = http.get("/console/ops/reconcile", params={"run": "1"})
    assert clean.status_code == 200 and "data-clean" in clean.text
    one = http.get("/console/ops/reconcile", params={"run": "1", "uin": str(world)})
    assert "data-clean" in one.text
    with transaction(rt.engine) as conn:  # a balance that no longer equals its postings
        conn.exec_driver_sql("UPDATE ledger_accounts SET balance = balance + 1 "
                             f"WHERE uin = {world} AND kind = 'cash'")
    dirty = http.get("/console/ops/reconcile", params={"run": "1"})
    assert 'data-difference="balance_mismatch"' in dirty.text and "data-clean" not in dirty.text
    bad = http.get("/console/ops/reconcile", params={"run": "1", "uin": "x"})
    assert bad.status_code == 400 and 'data-error-field="uin"' in bad.text


def test_failed_jobs_are_listed_and_retried(rt, world):
    now = db_time(rt.clock.now())
    with transaction(rt.engine) as conn:
        for period, state in (("2026-01-01T00", "failed"), ("2026-01-01T01", "done")):
            conn.execute(insert(job_runs).values(
                job="settlement.hourly", period_key=period, cadence="hourly", state=state,
                attempts=3, period_start=now - timedelta(hours=1), period_end=now, due_at=now,
                created_at=now,
                last_error="boom <b>" if state == "failed" else None))
    http = operator_client(rt)
    failed = http.get("/console/ops/jobs", params={"state": "failed"})
    assert re.findall(r'data-state="(\w+)"', failed.text) == ["failed"]
    assert "boom &lt;b&gt;" in failed.text
    retried = http.post("/console/ops/jobs/retry", data={
        "job": "settlement.hourly", "period": "2026-01-01T00", "csrf_token": csrf_of(failed.text)})
    assert retried.status_code == 303
    after = http.get(retried.headers["location"])
    assert 'data-retried="1"' in after.text and "data-empty" in after.text
    audited = http.get("/console/ops/audit", params={"action": "retry_jobs"})
    assert "operator:alice" in audited.text and "2026-01-01T00" in audited.text
    everything = http.get("/console/ops/jobs")
    assert sorted(re.findall(r'data-state="(\w+)"', everything.text)) == ["done", "pending"]
    bad = http.get("/console/ops/jobs", params={"state": "stuck"})
    assert bad.status_code == 400 and 'data-error-field="state"' in bad.text


def test_arrears_cases_across_accounts(rt, world):
    from feecenter.arrears.tables import arrears_cases

    other = new_account(rt, "other-shop")
    now = db_time(rt.clock.now())
    with transaction(rt.engine) as conn:
        conn.execute(insert(arrears_cases).values(uin=world, started_at=now, opened_at=now,
                                                  state="open", open_uin=world,
                                                  arrears_at_open=12_34))
        conn.execute(insert(arrears_cases).values(uin=other, started_at=now, opened_at=now,
                                                  ended_at=now, state="closed",
                                                  arrears_at_open=5_00))
    http = operator_client(rt)
    open_cases = http.get("/console/ops/arrears")
    assert f">{world}</a>" in open_cases.text and f">{other}</a>" not in open_cases.text
    assert "¥12.34" in open_cases.text
    every = http.get("/console/ops/arrears", params={"state": ""})
    assert f">{world}</a>" in every.text and f">{other}</a>" in every.text
    bad = http.get("/console/ops/arrears", params={"state": "late"})
    assert bad.status_code == 400 and 'data-error-field="state"' in bad.text


def test_the_catalog_is_shown_read_only_with_its_history(rt, world):
    http = operator_client(rt)
    assert "data-empty" in http.get("/console/ops/catalog").text
    load_sample_catalog(rt)
    products = http.get("/console/ops/catalog")
    assert 'data-product="cvm"' in products.text and "sample.yaml" in products.text
    cvm = http.get("/console/ops/catalog/cvm")
    assert cvm.status_code == 200 and 'data-price-list="' in cvm.text
    history = http.get("/console/ops/catalog/cvm", params={"history": "1"})
    assert len(re.findall(r'data-price-list="', history.text)) >= len(
        re.findall(r'data-price-list="', cvm.text))
    missing = http.get("/console/ops/catalog/nope")
    assert missing.status_code == 404 and 'data-error-field="product"' in missing.text
    assert products.text.count('method="post"') == 1  # log out only: nothing to change here


def test_the_cli_sets_an_operator_password(cli, rt):
    code, _ = cli.json("operator", "create", "--name", "bob")
    assert code == 0
    result = cli("operator", "set-password", "--name", "bob", input="bob-password-1\n")
    assert "password_set: True" in result.stdout and "bob-password-1" not in result.stdout
    assert ops_log_in(client(rt), "bob", "bob-password-1").status_code == 303
    code, body = cli.json("operator", "set-password", "--name", "nobody", ok=False,
                          input="whatever-123\n")
    assert code == 1 and body["error"]["code"] == "NotFound"
    assert cli("operator", "set-password", "--name", "bob", input="short\n",
               ok=False).exit_code == 1


def test_only_operators_set_operator_passwords(rt, world):
    from feecenter.accounts import service as accounts
    from feecenter.errors import PermissionDenied

    with rt.engine.connect() as conn:
        owner = accounts.user_actor(conn, accounts.find_user(conn, world, None)["id"])
    with transaction(rt.engine) as conn, pytest.raises(PermissionDenied):
        operator_sessions.set_password(conn, rt.clock, owner, "alice", "taken-over-1")
    assert ops_log_in(client(rt)).status_code == 303
