"""The web console (/console): login and sessions, CSRF, throttling, languages,
escaping, security headers, and the overview's figures against the balance API.

Every test runs on SQLite and PostgreSQL (the ``rt`` fixture) with the app
in-process (Starlette's TestClient) on the test's FixedClock.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from feecenter.accounts import service as accounts
from feecenter.api.app import create_app
from feecenter.auth import sessions
from feecenter.auth.tables import console_sessions, login_failures
from feecenter.console import i18n
from feecenter.console.menu import MENU
from feecenter.db.engine import transaction
from feecenter.errors import InvalidInput, PermissionDenied
from feecenter.funds import service as funds
from feecenter.money import format_yuan
from tests.helpers import OPS, add_cash, add_gift, api_key, new_account, revenue, row_counts
from tests.rest_harness import HOST, Signed

PASSWORD = "s3cret-horse-battery"
XSS = "<script>alert(1)</script>"
CONSOLE = Path(__file__).resolve().parent.parent / "src/feecenter/console"
FIGURES = ("available", "cash", "gift", "income", "frozen", "arrears", "credit_amount",
           "real_credit_balance")


def set_password(rt, uin: int, login: str | None, password: str = PASSWORD) -> None:
    with transaction(rt.engine) as conn:
        sessions.set_password(conn, rt.clock, OPS, uin, login, password)


@pytest.fixture
def shop(rt):
    """acme-cloud: cash, gift, a freeze and credit; its owner and three sub-users
    (finance, admin, readonly) with console passwords; the verified name is hostile."""
    uin = new_account(rt, "acme-cloud", personal_name=XSS)
    add_cash(rt, uin, 1_234_567_89)
    add_gift(rt, uin, 200_00)
    with transaction(rt.engine) as conn:
        funds.freeze(conn, rt.clock, uin, 300_00, key="console:freeze")
        funds.grant_credit(conn, rt.clock, OPS, uin, credit_limit=1_000_00)
        for role in ("finance", "admin", "readonly"):
            accounts.add_user(conn, rt.clock, OPS, uin, f"acme-{role}", role)
    for login in (None, "acme-finance", "acme-admin", "acme-readonly"):
        set_password(rt, uin, login)
    return uin


def client(rt, base_url: str = "http://testserver") -> TestClient:
    return TestClient(create_app(rt), base_url=base_url, follow_redirects=False)


def login_form(http: TestClient, next_path: str = "/console/") -> str:
    page = http.get(f"/console/login?next={next_path}")
    assert page.status_code == 200
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def log_in(http: TestClient, account: str, login: str, password: str = PASSWORD,
           next_path: str = "/console/"):
    token = login_form(http, next_path)
    return http.post("/console/login", data={"account": account, "login": login,
                                             "password": password, "csrf_token": token,
                                             "next": next_path})


def logged_in(rt, login: str = "acme-cloud", account: str = "acme-cloud") -> TestClient:
    http = client(rt)
    response = log_in(http, account, login)
    assert response.status_code == 303, response.text
    return http


def csrf_of(page_html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page_html).group(1)


def sessions_count(rt) -> int:
    return row_counts(rt, console_sessions)[0]


def figures(page_html: str) -> dict[str, str]:
    return dict(re.findall(r'data-field="(\w+)">([^<]*)<', page_html))


def as_yuan_text(shown: str) -> str:
    """"¥1,234.56" (or "-¥1.00") as the API writes it: "1234.56"."""
    return shown.replace("¥", "").replace(",", "")


# ---------------------------------------------------------------- login, sessions, logout

def test_owner_logs_in_sees_the_overview_and_logs_out(rt, shop):
    http = client(rt)
    first = http.get("/console/")
    assert first.status_code == 303 and first.headers["location"] == "/console/login?next=/console/"
    response = log_in(http, "acme-cloud", "acme-cloud")
    assert response.status_code == 303 and response.headers["location"] == "/console/"
    cookie = response.headers["set-cookie"]
    assert "fc_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Path=/console" in cookie and "Secure" not in cookie  # plain http here
    overview = http.get("/console/")
    assert overview.status_code == 200 and "<h1>概览</h1>" in overview.text
    assert sessions_count(rt) == 1

    # the UIN works as the account too
    assert log_in(client(rt), str(shop), "acme-cloud").status_code == 303

    out = http.post("/console/logout", data={"csrf_token": csrf_of(overview.text)})
    assert out.status_code == 303 and out.headers["location"] == "/console/login"
    assert sessions_count(rt) == 1  # only the other client's
    http.cookies.clear()
    again = client(rt)
    again.cookies.set("fc_session", response.cookies["fc_session"], path="/console")
    assert again.get("/console/").status_code == 303  # the ended session opens nothing


def test_the_session_cookie_is_secure_over_https(rt, shop):
    http = client(rt, "https://testserver")
    response = log_in(http, "acme-cloud", "acme-cloud")
    assert response.status_code == 303 and "Secure" in response.headers["set-cookie"]


def test_only_the_token_digest_is_stored(rt, shop):
    http = logged_in(rt)
    token = http.cookies["fc_session"]
    with rt.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT id FROM console_sessions").scalar_one()
        hashed = conn.exec_driver_sql("SELECT password_hash FROM user_passwords").scalars().all()
    assert stored == hashlib.sha256(token.encode()).hexdigest() != token
    assert all(h.startswith("$argon2id$") and PASSWORD not in h for h in hashed)


@pytest.mark.parametrize("account, login, password", [
    ("acme-cloud", "acme-cloud", "wrong-password"),
    ("acme-cloud", "nobody", PASSWORD),
    ("no-such-account", "acme-cloud", PASSWORD),
    ("999999999999", "acme-cloud", PASSWORD),
    ("9" * 40, "acme-cloud", PASSWORD),
    ("acme-cloud", "x" * 500, "y" * 5000),
])
def test_a_wrong_account_user_or_password_is_refused_alike(rt, shop, account, login, password):
    http = client(rt)
    response = log_in(http, account, login, password)
    assert response.status_code == 401
    assert "账号、用户名或密码错误" in response.text and "fc_session" not in response.cookies
    assert sessions_count(rt) == 0
    assert f'value="{account}"' in response.text  # the form keeps what was typed
    assert response.headers["content-type"].startswith("text/html")


def test_a_user_without_a_password_cannot_log_in(rt, shop):
    with transaction(rt.engine) as conn:
        accounts.add_user(conn, rt.clock, OPS, shop, "no-password", "readonly")
    assert log_in(client(rt), "acme-cloud", "no-password", "").status_code == 401


def test_repeated_failures_lock_the_login_for_a_while(rt, shop):
    http = client(rt)
    for _ in range(sessions.MAX_FAILURES):
        assert log_in(http, "acme-cloud", "acme-cloud", "guess").status_code == 401
    locked = log_in(http, "acme-cloud", "acme-cloud")  # the right password, still refused
    assert locked.status_code == 429 and "登录失败次数过多" in locked.text
    assert sessions_count(rt) == 0
    # another user of the account is not locked
    assert log_in(client(rt), "acme-cloud", "acme-finance").status_code == 303
    rt.clock.advance(seconds=sessions.LOCKOUT.total_seconds() + 1)
    assert log_in(http, "acme-cloud", "acme-cloud").status_code == 303


def test_failures_count_per_user_within_the_window(rt, shop):
    http = client(rt)
    for _ in range(sessions.MAX_FAILURES - 1):
        assert log_in(http, "acme-cloud", "acme-cloud", "guess").status_code == 401
    rt.clock.advance(seconds=sessions.FAILURE_WINDOW.total_seconds())
    # the window has passed: the count starts again, and the UIN names the same user
    for _ in range(sessions.MAX_FAILURES - 1):
        assert log_in(http, str(shop), "acme-cloud", "guess").status_code == 401
    assert log_in(http, "acme-cloud", "acme-cloud").status_code == 303  # clears the count
    for _ in range(sessions.MAX_FAILURES - 1):
        assert log_in(http, str(shop), "acme-cloud", "guess").status_code == 401
    assert log_in(http, "acme-cloud", "acme-cloud", "guess").status_code == 401
    assert log_in(http, "acme-cloud", "acme-cloud").status_code == 429
    # a name that is no user is throttled too, with the same answer as a wrong password
    for _ in range(sessions.MAX_FAILURES):
        assert log_in(http, "acme-cloud", "ghost", "guess").status_code == 401
    assert log_in(http, "acme-cloud", "ghost", "guess").status_code == 429


def test_an_idle_session_expires_and_login_leads_back(rt, shop):
    http = logged_in(rt)
    assert http.get("/console/").status_code == 200
    rt.clock.advance(seconds=sessions.IDLE.total_seconds() + 1)
    expired = http.get("/console/?from=bookmark")
    assert expired.status_code == 303
    assert expired.headers["location"] == "/console/login?next=/console/%3Ffrom%3Dbookmark"
    assert sessions_count(rt) == 0  # the expired session is deleted
    token = login_form(http, "/console/%3Ffrom%3Dbookmark")
    back = http.post("/console/login", data={"account": "acme-cloud", "login": "acme-cloud",
                                             "password": PASSWORD, "csrf_token": token,
                                             "next": "/console/?from=bookmark"})
    assert back.status_code == 303 and back.headers["location"] == "/console/?from=bookmark"


def test_use_keeps_a_session_alive_until_its_absolute_expiry(rt, shop):
    http = logged_in(rt)
    step = sessions.IDLE - timedelta(minutes=5)
    used = timedelta(0)
    while used + step < sessions.ABSOLUTE:
        rt.clock.advance(seconds=step.total_seconds())
        used += step
        assert http.get("/console/").status_code == 200, used
    rt.clock.advance(seconds=(sessions.ABSOLUTE - used).total_seconds())
    assert http.get("/console/").status_code == 303


def test_an_expired_session_sends_htmx_to_the_login_page(rt, shop):
    http = logged_in(rt)
    rt.clock.advance(seconds=sessions.IDLE.total_seconds() + 1)
    response = http.get("/console/overview/balances", headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response.headers["hx-redirect"].startswith("/console/login?next=")


def test_a_new_password_ends_the_users_sessions(rt, shop):
    http = logged_in(rt)
    set_password(rt, shop, None, "another-password")
    assert http.get("/console/").status_code == 303
    assert log_in(client(rt), "acme-cloud", "acme-cloud").status_code == 401
    assert log_in(client(rt), "acme-cloud", "acme-cloud", "another-password").status_code == 303


# ---------------------------------------------------------------- CSRF

def test_logout_without_or_with_a_stale_csrf_token_is_refused(rt, shop):
    http = logged_in(rt)
    page = http.get("/console/")
    stale = csrf_of(page.text)
    for data, headers in (({}, {}), ({"csrf_token": "x" * 43}, {}), ({"csrf_token": "令牌"}, {}),
                          ({}, {"X-CSRF-Token": "forged"})):
        refused = http.post("/console/logout", data=data, headers=headers)
        assert refused.status_code == 403 and "请求被拒绝" in refused.text
        assert sessions_count(rt) == 1 and http.get("/console/").status_code == 200
    # a token of an earlier session of the same user is stale
    assert http.post("/console/logout", data={"csrf_token": stale}).status_code == 303
    other = logged_in(rt)
    assert other.post("/console/logout", data={"csrf_token": stale}).status_code == 403
    assert sessions_count(rt) == 1
    # htmx sends the token as a header
    current = csrf_of(other.get("/console/").text)
    assert other.post("/console/logout", headers={"X-CSRF-Token": current}).status_code == 303
    assert sessions_count(rt) == 0


def test_a_login_post_without_the_forms_token_is_refused(rt, shop):
    http = client(rt)
    token = login_form(http)
    for sent in ("", "forged-token", "令牌"):
        refused = http.post("/console/login", data={
            "account": "acme-cloud", "login": "acme-cloud", "password": PASSWORD,
            "csrf_token": sent})
        assert refused.status_code == 403
    cross_site = client(rt)  # a form posted from elsewhere has no login cookie
    refused = cross_site.post("/console/login", data={
        "account": "acme-cloud", "login": "acme-cloud", "password": PASSWORD,
        "csrf_token": token})
    assert refused.status_code == 403
    assert sessions_count(rt) == 0 and row_counts(rt, login_failures) == (0,)


# ---------------------------------------------------------------- pages

@pytest.mark.spec("BAL-1", "BAL-2", "BAL-7")
def test_the_overview_shows_what_the_balance_api_shows(rt, shop):
    http = logged_in(rt, "acme-finance")
    shown = figures(http.get("/console/").text)
    key = api_key(rt, shop)
    api = Signed(rt, TestClient(create_app(rt), base_url=f"http://{HOST}"), key).send(
        "GET", f"/api/v1/accounts/{shop}/balance").json()
    assert set(shown) == set(FIGURES)
    assert {f: as_yuan_text(v) for f, v in shown.items()} == {f: api[f] for f in FIGURES}
    assert shown["cash"] == "¥1,234,567.89" and shown["frozen"] == "¥300.00"
    assert shown["available"] == "¥1,234,467.89"  # BAL-2: cash + gift - frozen
    assert shown["credit_amount"] == "¥1,000.00"
    assert "data-arrears-banner" not in http.get("/console/").text
    partial = http.get("/console/overview/balances", headers={"HX-Request": "true"})
    assert partial.status_code == 200 and figures(partial.text) == shown
    assert "<html" not in partial.text


@pytest.mark.spec("BAL-1", "BAL-4")
def test_an_account_in_arrears_gets_a_banner(rt):
    uin = new_account(rt, "debtor")
    add_cash(rt, uin, 10_00)
    account = revenue(rt)
    with transaction(rt.engine) as conn:
        funds.spend(conn, rt.clock, uin, 1_234_56 + 10_00, key="console:debt", postpaid=True,
                    revenue_account_id=account, product_code="cvm")
    set_password(rt, uin, None)
    page = logged_in(rt, "debtor", "debtor").get("/console/").text
    assert figures(page)["arrears"] == "¥1,234.56" and figures(page)["available"] == "-¥1,234.56"
    banner = re.search(r'data-arrears-banner>([^<]*)<', page).group(1)
    assert "您的账户已欠费 ¥1,234.56" in banner


@pytest.mark.spec("ACC-2")
@pytest.mark.parametrize("login, sees", [("acme-cloud", True), ("acme-finance", True),
                                         ("acme-admin", False), ("acme-readonly", False)])
def test_only_owner_and_finance_see_balances(rt, shop, login, sees):
    page = logged_in(rt, login).get("/console/")
    assert page.status_code == 200
    if sees:
        assert len(figures(page.text)) == len(FIGURES) and "data-denied" not in page.text
    else:
        assert figures(page.text) == {}
        denied = re.search(r"data-denied>([^<]*)<", page.text).group(1)
        assert denied == "缺少财务权限，请联系主账号授权"
        with rt.engine.connect() as conn:  # the service is what refuses
            actor = accounts.user_actor(conn, accounts.find_user(conn, shop, login)["id"])
            with pytest.raises(PermissionDenied):
                funds.balance_view(conn, rt.clock, actor, shop)


def test_hostile_text_is_escaped(rt, shop):
    page = logged_in(rt).get("/console/").text
    assert XSS not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_language_switch_is_remembered(rt, shop):
    http = logged_in(rt)
    zh = http.get("/console/").text
    assert '<html lang="zh-CN">' in zh and "可用余额" in zh and "退出登录" in zh
    assert "acme-cloud (主账号)" in zh
    switched = http.get("/console/lang/en?next=/console/%3Fa%3D1")
    assert switched.status_code == 303 and switched.headers["location"] == "/console/?a=1"
    assert "fc_lang=en" in switched.headers["set-cookie"]
    en = http.get("/console/").text
    assert '<html lang="en">' in en and "Available balance" in en and "Log out" in en
    assert "可用余额" not in en and "acme-cloud (Owner)" in en
    # the login page too, and a language nobody offers falls back to zh-CN
    assert "Log in to the console" in http.get("/console/login").text
    http.get("/console/lang/fr")
    assert '<html lang="zh-CN">' in http.get("/console/").text


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x",
                                    "/api/v1/ops/reconcile", "/console\\@evil", None])
def test_redirects_stay_inside_the_console(rt, target):
    http = client(rt)
    query = "" if target is None else f"?next={target}"
    response = http.get(f"/console/lang/en{query}")
    assert response.status_code == 303 and response.headers["location"] == "/console/"


def test_english_errors_in_english(rt, shop):
    http = client(rt)
    http.cookies.set("fc_lang", "en", path="/console")
    response = log_in(http, "acme-cloud", "acme-cloud", "wrong")
    assert "wrong account, user name or password" in response.text
    page = logged_in(rt, "acme-readonly")
    page.cookies.set("fc_lang", "en", path="/console")
    assert "the finance permission is required" in page.get("/console/").text


def test_the_menu_links_only_pages_that_exist(rt, shop):
    http = logged_in(rt)
    page = http.get("/console/").text
    labels_zh = {"overview": "概览", "recharge": "在线充值", "remittance": "对公汇款", "transactions": "收支明细", "bills": "账单",
                 "bill_downloads": "下载中心", "orders": "订单",
                 "resources": "资源", "renewal": "续费管理", "recycle_bin": "回收站",
                 "coupons": "优惠券", "arrears": "欠费", "invoices": "发票",
                 "withdrawals": "提现",
                 "users": "用户与密钥", "messages": "消息", "service_requests": "工单",
                 "cancellation": "账号注销"}
    assert [item.key for item in MENU] == list(labels_zh)
    for item in MENU:
        label = labels_zh[item.key]
        if item.path:
            assert f'href="{item.path}"' in page and http.get(item.path).status_code == 200
        else:
            assert f'aria-disabled="true" title="尚未开放">{label}</span>' in page
    built = [item for item in MENU if item.path]
    assert len(re.findall(r'<nav class="menu".*?</nav>', page, re.S)[0].split("href=")) == 1 + len(built)


def test_console_responses_carry_the_security_headers(rt, shop):
    http = logged_in(rt)
    for path in ("/console/login", "/console/", "/console/static/console.css",
                 "/console/static/vendor/htmx.min.js"):
        response = http.get(path)
        assert response.status_code == 200, path
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in http.get("/healthz").headers
    page = http.get("/console/").text
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []  # no inline script
    assert " style=" not in page and "<style" not in page
    assert http.get("/console").headers["location"] == "/console/"
    missing = http.get("/console/no-such-page")
    assert missing.status_code == 404 and "页面不存在" in missing.text
    assert "frame-ancestors 'none'" in missing.headers["content-security-policy"]
    assert http.get("/console/static/no-such-file.css").status_code == 404


def test_htmx_is_the_vendored_version_the_readme_names():
    readme = (CONSOLE / "static/vendor/README.md").read_text()
    digest = hashlib.sha256((CONSOLE / "static/vendor/htmx.min.js").read_bytes()).hexdigest()
    assert f"`{digest}`" in readme
    version = re.search(r'version:"([0-9.]+)"',
                        (CONSOLE / "static/vendor/htmx.min.js").read_text()).group(1)
    assert version.startswith("2.0.") and f"| {version} |" in readme


def test_every_console_message_has_its_chinese_translation():
    """The catalog holds exactly the messages the code and templates use, each translated."""
    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    root = CONSOLE.parent.parent.parent
    method_map = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
    options = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    used = {msg for _, _, msg, _, _ in extract_from_dir(
        CONSOLE, method_map, options, keywords={"_": None, "N_": None, "gettext": None})}
    assert {"Overview", "Log in", "Available credit"} <= used
    with (CONSOLE / "translations/zh_CN/LC_MESSAGES/messages.po").open("rb") as po:
        catalog = read_po(po)
    entries = {m.id: m for m in catalog if m.id}
    assert set(entries) == used, "run pybabel extract and update (docs/console.md)"
    assert [m.id for m in entries.values() if not m.string or m.fuzzy] == []
    assert (root / "babel.cfg").is_file()
    zh = i18n.translations("zh-CN")
    assert zh.gettext("Transactions") == "收支明细" and zh.gettext("Log out") == "退出登录"


def test_yuan_amounts_are_grouped_with_two_decimals():
    from feecenter.console.web import yuan

    assert [yuan(v) for v in (0, 5, 123456, -1_234_567_89, 100_000_000_00)] == [
        "¥0.00", "¥0.05", "¥1,234.56", "-¥1,234,567.89", "¥100,000,000.00"]
    assert format_yuan(123456) == "1234.56"


# ---------------------------------------------------------------- passwords

def test_who_may_set_a_password(rt, shop):
    with transaction(rt.engine) as conn:
        owner = accounts.user_actor(conn, accounts.find_user(conn, shop, None)["id"])
        admin = accounts.user_actor(conn, accounts.find_user(conn, shop, "acme-admin")["id"])
        readonly = accounts.user_actor(conn, accounts.find_user(conn, shop, "acme-readonly")["id"])
        sessions.set_password(conn, rt.clock, owner, shop, "acme-finance", "owner-sets-this")
        sessions.set_password(conn, rt.clock, admin, shop, "acme-readonly", "admin-sets-this")
        sessions.set_password(conn, rt.clock, readonly, shop, "acme-readonly", "mine-to-set")
        for actor, target in ((admin, None), (admin, "acme-finance"), (readonly, "acme-admin")):
            with pytest.raises(PermissionDenied):
                sessions.set_password(conn, rt.clock, actor, shop, target, "not-allowed-1")
        for bad in ("short", "x" * (sessions.MAX_PASSWORD + 1)):
            with pytest.raises(InvalidInput):
                sessions.set_password(conn, rt.clock, OPS, shop, None, bad)
    assert log_in(client(rt), "acme-cloud", "acme-finance", "owner-sets-this").status_code == 303
    assert log_in(client(rt), "acme-cloud", "acme-readonly", "mine-to-set").status_code == 303


def test_the_cli_sets_a_password_from_stdin(cli, rt):
    uin = new_account(rt, "cli-shop")
    result = cli("account", "set-password", "--uin", uin, input="from-the-cli-1\n")
    assert "password_set: True" in result.stdout and "from-the-cli-1" not in result.stdout
    code, body = cli.json("account", "set-password", "--uin", uin, "--login", "nobody",
                          ok=False)
    assert code == 1 and body["error"]["code"] == "NotFound"
    refused = cli("account", "set-password", "--uin", uin, input="short\n", ok=False)
    assert refused.exit_code == 1
    assert log_in(client(rt), "cli-shop", "cli-shop", "from-the-cli-1").status_code == 303
