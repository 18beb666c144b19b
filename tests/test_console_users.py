"""The console's 用户与密钥 page: the users and keys the REST API lists, adding a
sub-user, changing a role, setting a sub-user's password, creating a key (its secret
shown once) and enabling or disabling one; who may, as ``may_manage_user`` says
(ACC-2): a readonly user gets no buttons for others and its crafted POSTs are
refused (403) with nothing written; field errors in the page's language; CSRF.

Both backends (the ``rt`` fixture), the app in-process (TestClient).
"""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from feecenter.accounts import service as accounts
from feecenter.accounts.tables import users
from feecenter.api.app import create_app
from feecenter.audit.tables import audit_log
from feecenter.auth import service as auth
from feecenter.auth.service import NewKey
from feecenter.auth.tables import api_keys, user_passwords
from feecenter.db.engine import transaction
from feecenter.errors import InvalidInput, PermissionDenied
from tests.helpers import OPS, api_key, row_counts
from tests.rest_harness import HOST, Signed
from tests.test_console import XSS, csrf_of, log_in, logged_in, shop  # noqa: F401 - fixture


def rest(rt, key) -> Signed:
    return Signed(rt, TestClient(create_app(rt), base_url=f"http://{HOST}"), key)


def written(rt) -> tuple[int, ...]:
    return row_counts(rt, users, api_keys, user_passwords, audit_log)


def roles_shown(html: str) -> dict[str, str]:
    return dict(re.findall(r'<tr data-user="([^"]+)">.*?data-role="(\w+)"', html, re.S))


def keys_shown(html: str) -> dict[str, str]:
    return dict(re.findall(r'<tr data-key="(\w+)">.*?data-state="(\w+)"', html, re.S))


def user_id(rt, uin: int, login: str | None) -> int:
    with rt.engine.connect() as conn:
        return accounts.find_user(conn, uin, login)["id"]


def actor_of(rt, uin: int, login: str | None):
    with rt.engine.connect() as conn:
        return accounts.user_actor(conn, user_id(rt, uin, login))


@pytest.mark.spec("ACC-2")
def test_the_page_lists_the_users_and_keys_the_rest_api_lists(rt, shop):  # noqa: F811 - the fixture imported above
    owner_key = api_key(rt, shop)
    api = rest(rt, owner_key)
    http = logged_in(rt)
    page = http.get("/console/users")
    assert page.status_code == 200 and "<h1>用户与密钥</h1>" in page.text
    listed = api.send("GET", f"/api/v1/accounts/{shop}/users").json()
    assert roles_shown(page.text) == {u["login"]: u["role"] for u in listed}
    assert len(listed) == 4
    keys = api.send("GET", f"/api/v1/accounts/{shop}/api-keys").json()
    assert keys_shown(page.text) == {k["secret_id"]: k["state"] for k in keys}
    assert owner_key.secret_key not in page.text  # never the secret
    created = next(k["created_at"] for k in keys if k["secret_id"] == owner_key.secret_id)
    assert created in page.text  # business time, as the API gives it
    # the owner may do everything: add users, change the sub-users' roles, set their passwords
    assert 'action="/console/users"' in page.text
    assert page.text.count('class="set-role"') == 3
    assert page.text.count('class="set-password"') == 3


@pytest.mark.spec("ACC-2")
def test_the_owner_adds_a_sub_user_changes_its_role_and_sets_its_password(rt, shop):  # noqa: F811 - the fixture imported above
    http = logged_in(rt)
    csrf = csrf_of(http.get("/console/users").text)
    added = http.post("/console/users", data={"login": "new-finance", "role": "finance",
                                              "csrf_token": csrf})
    assert added.status_code == 303 and added.headers["location"] == "/console/users"
    assert roles_shown(http.get("/console/users").text)["new-finance"] == "finance"

    done = http.post("/console/users/password", data={"login": "new-finance",
                                                      "password": "a-new-password",
                                                      "csrf_token": csrf})
    assert done.status_code == 303
    page = TestClient(create_app(rt), follow_redirects=False)
    assert log_in(page, "acme-cloud", "new-finance", "a-new-password").status_code == 303
    assert 'data-field="cash"' in page.get("/console/").text

    changed = http.post("/console/users/role", data={"login": "new-finance", "role": "readonly",
                                                     "csrf_token": csrf})
    assert changed.status_code == 303
    listed = rest(rt, api_key(rt, shop)).send("GET", f"/api/v1/accounts/{shop}/users").json()
    assert {u["login"]: u["role"] for u in listed}["new-finance"] == "readonly"
    # the new role holds at once, in the session opened before it
    assert "缺少财务权限" in page.get("/console/").text


@pytest.mark.spec("ACC-2")
def test_a_readonly_user_gets_no_buttons_for_others_and_its_posts_are_refused(rt, shop):  # noqa: F811 - the fixture imported above
    owner_key = api_key(rt, shop)
    http = logged_in(rt, "acme-readonly")
    page = http.get("/console/users")
    assert page.status_code == 200
    assert 'action="/console/users"' not in page.text  # no "add a sub-user"
    assert "set-role" not in page.text and "set-password" not in page.text
    assert owner_key.secret_id not in page.text  # only its own keys are listed
    csrf = csrf_of(page.text)
    before = written(rt)
    attempts = [("/console/users", {"login": "sneaky", "role": "readonly"}),
                ("/console/users/role", {"login": "acme-readonly", "role": "finance"}),
                ("/console/users/role", {"login": "acme-finance", "role": "readonly"}),
                ("/console/users/password", {"login": "acme-cloud", "password": "taken-over-1"}),
                ("/console/users/keys", {"login": "acme-finance"}),
                ("/console/users/keys/state", {"secret_id": owner_key.secret_id,
                                               "action": "disable"})]
    for path, data in attempts:
        refused = http.post(path, data={**data, "csrf_token": csrf})
        assert refused.status_code == 403, (path, refused.text)
        assert 'class="notice error"' in refused.text and "权限" in refused.text
    assert written(rt) == before
    # its own key, as the services allow every user (may_manage_user)
    own = http.post("/console/users/keys", data={"login": "acme-readonly", "csrf_token": csrf})
    assert own.status_code == 200 and "data-secret-key" in own.text


@pytest.mark.spec("ACC-2")
def test_an_admin_manages_only_readonly_users(rt, shop):  # noqa: F811 - the fixture imported above
    http = logged_in(rt, "acme-admin")
    page = http.get("/console/users")
    assert re.findall(r'<select name="role"[^>]*>(.*?)</select>', page.text, re.S)[-1].count(
        "<option") == 1  # it may add readonly users only
    assert "set-role" not in page.text  # readonly is the only role it may give
    forms = re.findall(r'class="set-password">.*?name="login" value="([^"]+)"', page.text, re.S)
    assert forms == ["acme-readonly"]
    csrf = csrf_of(page.text)
    before = written(rt)
    refused = http.post("/console/users/role", data={"login": "acme-readonly", "role": "admin",
                                                     "csrf_token": csrf})
    assert refused.status_code == 403 and "只能管理权限少于自己的用户" in refused.text
    assert written(rt) == before
    assert http.post("/console/users", data={"login": "helper", "role": "readonly",
                                             "csrf_token": csrf}).status_code == 303


@pytest.mark.spec("ACC-2")
def test_set_role_follows_may_manage_user(rt, shop):  # noqa: F811 - the fixture imported above
    owner, admin = actor_of(rt, shop, None), actor_of(rt, shop, "acme-admin")
    with transaction(rt.engine) as conn:
        for actor, login, role in ((admin, "acme-admin", "finance"),  # not itself
                                   (admin, "acme-readonly", "admin"),  # not above its own
                                   (admin, "acme-finance", "readonly")):  # not a finance user
            with pytest.raises(PermissionDenied):
                accounts.set_role(conn, rt.clock, actor, shop, login, role)
        for login, role, field in (("acme-cloud", "finance", "login"),  # the owner's is fixed
                                   ("acme-finance", "owner", "role"),
                                   ("acme-finance", "root", "role"),
                                   ("bad\x00name", "readonly", "login")):
            with pytest.raises(InvalidInput) as refused:
                accounts.set_role(conn, rt.clock, owner, shop, login, role)
            assert refused.value.field == field
        assert accounts.set_role(conn, rt.clock, owner, shop, "acme-admin", "finance")["role"] \
            == "finance"
        assert accounts.set_role(conn, rt.clock, OPS, shop, "acme-admin", "admin")["role"] \
            == "admin"


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_bad_input_is_shown_at_its_field_in_the_pages_language(rt, shop, lang):  # noqa: F811 - the fixture imported above
    http = logged_in(rt)
    http.cookies.set("fc_lang", lang, path="/console")
    csrf = csrf_of(http.get("/console/users").text)
    before = written(rt)
    cases = [
        ("/console/users", {"login": XSS, "role": "finance"}, 400, "login",
         "登录名须为 2–100 个字符", "login must be 2-100 characters"),
        ("/console/users", {"login": "acme-finance", "role": "finance"}, 409, "login",
         "用户已存在：acme-finance", "user already exists: acme-finance"),
        ("/console/users", {"login": "fine-name", "role": "owner"}, 400, "role",
         "角色只能为 finance / admin / readonly", "role must be finance, admin or readonly"),
        ("/console/users/role", {"login": "nobody", "role": "readonly"}, 404, "user",
         "用户不存在：nobody", "user not found: nobody"),
        ("/console/users/password", {"login": "acme-finance", "password": "short"}, 400,
         "password", "密码须为 8–128 个字符", "a password has 8 to 128 characters"),
        ("/console/users/keys/state", {"secret_id": "AKIDnone", "action": "disable"}, 404,
         "secret_id", "密钥不存在：AKIDnone", "API key not found: AKIDnone"),
        ("/console/users/keys/state", {"secret_id": "AKIDnone", "action": "explode"}, 400,
         "action", "操作只能为启用或停用", "the action is enable or disable"),
    ]
    for path, data, status, field, zh, en in cases:
        response = http.post(path, data={**data, "csrf_token": csrf})
        assert response.status_code == status, (path, data, response.text)
        notice = re.search(r'<p class="notice error"[^>]*data-error-field="(\w+)">([^<]*)</p>',
                           response.text)
        assert notice and notice.groups() == (field, zh if lang == "zh-CN" else en)
    assert written(rt) == before
    # the refused name comes back in its field as text, never as markup
    again = http.post("/console/users", data={"login": XSS, "role": "finance",
                                              "csrf_token": csrf})
    assert XSS not in again.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in again.text


@pytest.mark.spec("ACC-2")
def test_a_new_key_shows_its_secret_once_works_and_can_be_disabled(rt, shop):  # noqa: F811 - the fixture imported above
    http = logged_in(rt)
    csrf = csrf_of(http.get("/console/users").text)
    made = http.post("/console/users/keys", data={"login": "acme-finance", "csrf_token": csrf},
                     headers={"HX-Request": "true"})
    assert made.status_code == 200 and made.text.startswith('<section id="keys"')
    assert made.headers["cache-control"] == "no-store"
    secret_id = re.search(r"data-secret-id>(\w+)<", made.text).group(1)
    secret_key = re.search(r"data-secret-key>(\w+)<", made.text).group(1)
    api = rest(rt, NewKey(secret_id, secret_key))
    assert api.send("GET", f"/api/v1/accounts/{shop}/balance").status_code == 200  # finance
    again = http.get("/console/users").text
    assert secret_id in again and secret_key not in again  # listed, the secret never again
    with rt.engine.connect() as conn:
        stored = conn.execute(api_keys.select()).mappings().all()
    assert all(secret_key not in str(dict(row)) for row in stored)

    off = http.post("/console/users/keys/state", data={"secret_id": secret_id,
                                                       "action": "disable", "csrf_token": csrf})
    assert off.status_code == 303 and keys_shown(http.get("/console/users").text)[secret_id] == \
        "disabled"
    assert api.send("GET", f"/api/v1/accounts/{shop}/balance").status_code == 401
    http.post("/console/users/keys/state", data={"secret_id": secret_id, "action": "enable",
                                                 "csrf_token": csrf})
    assert api.send("GET", f"/api/v1/accounts/{shop}/balance").status_code == 200


def test_a_post_without_or_with_a_stale_csrf_token_writes_nothing(rt, shop):  # noqa: F811 - the fixture imported above
    http = logged_in(rt)
    stale = csrf_of(http.get("/console/users").text)
    fresh = logged_in(rt)
    before = written(rt)
    for token in ("", stale + "x"):
        for path, data in (("/console/users", {"login": "csrf-victim", "role": "finance"}),
                           ("/console/users/keys", {"login": "acme-cloud"})):
            refused = fresh.post(path, data={**data, "csrf_token": token})
            assert refused.status_code == 403 and "请求被拒绝" in refused.text
    assert fresh.post("/console/users", data={"login": "csrf-victim", "role": "finance",
                                              "csrf_token": stale}).status_code == 403
    assert written(rt) == before


@pytest.mark.spec("ACC-2")
def test_rest_changes_a_role_through_the_same_service(rt, shop):  # noqa: F811 - the fixture imported above
    owner = rest(rt, api_key(rt, shop))
    changed = owner.send("PUT", f"/api/v1/accounts/{shop}/users/acme-finance/role",
                         {"role": "readonly"})
    assert changed.status_code == 200 and changed.json()["role"] == "readonly"
    with transaction(rt.engine) as conn:
        admin_key = auth.create_api_key(
            conn, rt.clock, OPS, shop, "acme-admin")
    before = written(rt)
    refused = rest(rt, admin_key).send("PUT", f"/api/v1/accounts/{shop}/users/acme-readonly/role",
                                       {"role": "admin"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "PermissionDenied"
    assert written(rt) == before
    page = logged_in(rt).get("/console/users").text
    assert roles_shown(page)["acme-finance"] == "readonly"
