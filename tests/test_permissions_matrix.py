"""Who may add users and manage API keys (ACC-2; docs/api.md), every role × every action,
through the REST API (signed requests, served for real) and the service layer.

The rule: a user manages its own keys; the owner manages everyone; an admin adds
and manages users of a lesser role (readonly) only — never the owner, a finance
user or another admin, whose keys would give it rights it lacks; finance and
readonly users manage only their own keys; a user of another account nothing;
operators everything. The table below is written out by hand, not derived from
the code under test.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from tencentcloud.billing.v20180709 import billing_client, models
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from feecenter.accounts import service as accounts
from feecenter.accounts.tables import users
from feecenter.auth import service as auth
from feecenter.auth.tables import api_keys
from feecenter.cli.client import ApiError, FeeCenterClient
from feecenter.db.engine import transaction
from feecenter.errors import PermissionDenied
from feecenter.orders import service as orders
from tests.compat_harness import Shop as CompatShop
from tests.helpers import OPS, add_cash, balance, buy, new_account
from tests.helpers import pay as pay_as_system
from tests.rest_harness import Signed

pytestmark = pytest.mark.spec("ACC-2")

ACTORS = ("owner", "admin", "finance", "readonly", "outsider", "operator")
TARGETS = ("self", "owner", "admin", "finance", "readonly")  # whose keys
ROLES = ("readonly", "finance", "admin")                     # which users may be added

# actor -> the key targets it may manage (create, disable, enable) and the roles it may add
MAY_KEYS = {
    "owner": {"self", "owner", "admin", "finance", "readonly"},
    "admin": {"self", "readonly"},
    "finance": {"self"},
    "readonly": {"self"},
    "outsider": {"self"},  # its own key, in its own account
    "operator": {"owner", "admin", "finance", "readonly"},
}
MAY_ADD = {"owner": {"readonly", "finance", "admin"}, "admin": {"readonly"}, "finance": set(),
           "readonly": set(), "outsider": set(), "operator": {"readonly", "finance", "admin"}}
# whose keys each actor sees in account A's key list (None: refused)
LISTS = {"owner": {"owner", "adm", "adm2", "fin", "fin2", "ro", "ro2"},
         "admin": {"adm", "ro", "ro2"}, "finance": {"fin"}, "readonly": {"ro"},
         "outsider": None, "operator": {"owner", "adm", "adm2", "fin", "fin2", "ro", "ro2"}}
ACTOR_LOGIN = {"owner": "owner", "admin": "adm", "finance": "fin", "readonly": "ro"}
TARGET_LOGIN = {"owner": "owner", "admin": "adm2", "finance": "fin2", "readonly": "ro2"}


class World:
    """Account A (owner and two users of each role), account B (an outsider), an operator;
    every user has a spare key to be managed, every actor a key to act with."""

    def __init__(self, rt):
        self.rt = rt
        self.uin = new_account(rt, "perm-a")
        self.outsider_uin = new_account(rt, "perm-b")
        self.user_ids = {"owner": self._user_id(self.uin, None)}
        with transaction(rt.engine) as conn:
            for login, role in (("adm", "admin"), ("adm2", "admin"), ("fin", "finance"),
                                ("fin2", "finance"), ("ro", "readonly"), ("ro2", "readonly")):
                self.user_ids[login] = accounts.add_user(conn, rt.clock, OPS, self.uin, login,
                                                         role)
            _, self.operator_key = auth.create_operator(conn, rt.clock, OPS, "perm-ops")
        self.keys = {a: self._key(*self.where(a)) for a in ACTORS if a != "operator"}
        self.keys["operator"] = self.operator_key
        self.spares = {(a, t): self._key(*self.target(a, t))
                       for a in ACTORS for t in MAY_KEYS["owner"] if self.target(a, t)}

    def where(self, actor: str) -> tuple[int, str | None]:
        """(uin, login) of an actor; None for the owner of its account."""
        if actor == "outsider":
            return self.outsider_uin, None
        login = ACTOR_LOGIN[actor]
        return self.uin, None if login == "owner" else login

    def target(self, actor: str, target: str) -> tuple[int, str | None] | None:
        if target == "self":
            return None if actor == "operator" else self.where(actor)
        login = TARGET_LOGIN[target]
        return self.uin, None if login == "owner" else login

    def _user_id(self, uin, login):
        with self.rt.engine.connect() as conn:
            return accounts.find_user(conn, uin, login)["id"]

    def _key(self, uin, login):
        with transaction(self.rt.engine) as conn:
            return auth.create_api_key(conn, self.rt.clock, OPS, uin, login)

    def actor(self, name: str):
        if name == "operator":
            return OPS
        uin, login = self.where(name)
        with self.rt.engine.connect() as conn:
            return accounts.user_actor(conn, self._user_id(uin, login))

    def set_state(self, secret_id: str, enabled: bool) -> None:
        with transaction(self.rt.engine) as conn:
            auth.set_key_state(conn, self.rt.clock, OPS, secret_id, enabled)

    def state(self, secret_id: str) -> str:
        with self.rt.engine.connect() as conn:
            return conn.execute(select(api_keys.c.state)
                                .where(api_keys.c.secret_id == secret_id)).scalar_one()

    def count(self, table) -> int:
        with self.rt.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(table)).scalar_one()

    def visible_logins(self, keys: list[dict]) -> set[str]:
        names = {v: k for k, v in self.user_ids.items()}
        return {names[k["user_id"]] for k in keys}


def check_matrix(world: World, do) -> list:
    """Run every (actor, action, target) through ``do(actor, action, *args)`` (returns True
    when allowed, False when refused with a permission error); collect what differs from
    the table, and check that a refusal wrote nothing."""
    wrong = []
    for actor in ACTORS:
        for role in ROLES:
            users_before = world.count(users)
            allowed = do(actor, "add_user", f"{actor}-{role}", role)
            if allowed != (role in MAY_ADD[actor]) or (
                    not allowed and world.count(users) != users_before):
                wrong.append((actor, "add_user", role, allowed))
        for target in TARGETS:
            where = world.target(actor, target)
            if where is None:
                continue
            keys_before = world.count(api_keys)
            allowed = do(actor, "create_key", *where)
            if allowed != (target in MAY_KEYS[actor]) or (
                    not allowed and world.count(api_keys) != keys_before):
                wrong.append((actor, "create_key", target, allowed))
            spare = world.spares[(actor, target)].secret_id
            for enabled, start in ((False, True), (True, False)):
                world.set_state(spare, start)
                allowed = do(actor, "set_key_state", spare, enabled)
                changed = world.state(spare) == ("enabled" if enabled else "disabled")
                if allowed != (target in MAY_KEYS[actor]) or allowed != changed:
                    wrong.append((actor, "enable" if enabled else "disable", target, allowed))
            world.set_state(spare, True)
        seen = do(actor, "list_keys", world.uin)
        expected = LISTS[actor]
        if (seen is False and expected is not None) or (
                seen is not False and world.visible_logins(seen) != expected):
            wrong.append((actor, "list_keys", seen if seen is False else
                          sorted(world.visible_logins(seen))))
    return wrong


def test_every_role_and_action_through_the_service_layer(rt):
    world = World(rt)

    def do(actor_name, action, *args):
        actor = world.actor(actor_name)
        try:
            with transaction(rt.engine) as conn:
                if action == "add_user":
                    accounts.add_user(conn, rt.clock, actor, world.uin, *args)
                elif action == "create_key":
                    auth.create_api_key(conn, rt.clock, actor, *args)
                elif action == "set_key_state":
                    auth.set_key_state(conn, rt.clock, actor, *args)
                else:
                    return auth.list_api_keys(conn, actor, *args)
        except PermissionDenied:
            return False
        return True

    assert check_matrix(world, do) == []


@pytest.mark.slow
def test_every_role_and_action_through_the_rest_api(live_server):
    rt, address = live_server
    world = World(rt)
    clients = {a: FeeCenterClient(f"http://{address}", k.secret_id, k.secret_key)
               for a, k in world.keys.items()}

    def do(actor_name, action, *args):
        client = clients[actor_name]
        try:
            if action == "add_user":
                login, role = args
                client.post(f"/api/v1/accounts/{world.uin}/users", {"login": login, "role": role})
            elif action == "create_key":
                uin, login = args
                client.post(f"/api/v1/accounts/{uin}/api-keys", {"login": login})
            elif action == "set_key_state":
                secret_id, enabled = args
                client.post(f"/api/v1/api-keys/{secret_id}/{'enable' if enabled else 'disable'}")
            else:
                return client.get(f"/api/v1/accounts/{args[0]}/api-keys")
        except ApiError as err:
            assert err.status == 403 and err.body["error"]["code"] == "PermissionDenied", err
            assert err.body["error"]["message_zh"] and err.body["error"]["message_en"]
            return False
        return True

    assert check_matrix(world, do) == []


def test_an_admin_cannot_take_over_the_account_through_either_api(live_server):
    """The attack of issue #16: an admin mints the owner's key, then reads and pays with it
    through the Tencent-compatible endpoint. The mint is refused, and the admin's own key
    gets no money rights there (the compat endpoint has no user or key action)."""
    rt, address = live_server
    uin = new_account(rt, "takeover")
    add_cash(rt, uin, 100_00)
    with transaction(rt.engine) as conn:
        accounts.add_user(conn, rt.clock, OPS, uin, "adm", "admin")
        key = auth.create_api_key(conn, rt.clock, OPS, uin, "adm")
    admin = FeeCenterClient(f"http://{address}", key.secret_id, key.secret_key)
    for login in (None, "takeover"):  # the owner by default and by name
        with pytest.raises(ApiError) as err:
            admin.post(f"/api/v1/accounts/{uin}/api-keys", {"login": login})
        assert (err.value.status, err.value.body["error"]["code"]) == (403, "PermissionDenied")
        assert "not one with the owner role" in err.value.body["error"]["message_en"]
    with pytest.raises(ApiError) as err:
        admin.post(f"/api/v1/accounts/{uin}/users", {"login": "my-finance", "role": "finance"})
    assert err.value.status == 403

    http = HttpProfile(protocol="http", endpoint=address, reqTimeout=10)
    sdk = billing_client.BillingClient(credential.Credential(key.secret_id, key.secret_key), "",
                                       ClientProfile(httpProfile=http))
    with pytest.raises(TencentCloudSDKException) as sdk_err:
        sdk.DescribeAccountBalance(models.DescribeAccountBalanceRequest())
    assert sdk_err.value.get_code() == "UnauthorizedOperation"
    pay = models.PayDealsRequest()
    pay.from_json_string(json.dumps({"OrderIds": ["202603020000000001"]}))
    with pytest.raises(TencentCloudSDKException) as sdk_err:
        sdk.PayDeals(pay)
    assert sdk_err.value.get_code() == "UnauthorizedOperation"
    assert balance(rt, uin).cash == 100_00
    with rt.engine.connect() as conn:
        holders = {k["user_id"] for k in auth.list_api_keys(conn, OPS, uin)}
        assert holders == {accounts.find_user(conn, uin, "adm")["id"]}  # no key was minted


# ---------------------------------------------------------------- every permission, both APIs

# action -> the actors that may do it, by hand from ACC-2 (docs/api.md, "Who may do what"),
# one action at least per permission of accounts/permissions.py. "outsider" is the owner of
# another account; it is left out of compat rows, where a key only ever reaches its own account.
MAY_DO = {
    "rest read_account": {"owner", "finance", "admin", "readonly"},      # READ_PROFILE
    "rest read_balance": {"owner", "finance"},                           # FINANCE
    "rest create_project": {"owner", "admin"},                           # MANAGE_RESOURCES
    "rest add_readonly_user": {"owner", "admin"},                        # MANAGE_USERS
    "rest renew": {"owner", "admin"},                                    # RENEWAL
    "rest read_renewal_order": {"owner", "finance", "admin"},            # RENEWAL or FINANCE
    "rest void_renewal_order": {"owner", "finance", "admin"},            # RENEWAL or FINANCE
    "rest read_purchase_order": {"owner", "finance"},                    # FINANCE
    "rest pay": {"owner", "finance"},                                    # FINANCE
    "compat DescribeAccountBalance": {"owner", "finance"},
    "compat DescribeBillList": {"owner", "finance"},
    "compat DescribeDealsByCond": {"owner", "finance"},
    "compat DescribeBillDetail": {"owner", "finance"},
    "compat PayDeals": {"owner", "finance"},
}
ROLE_LOGIN = {"finance": "fin", "admin": "adm", "readonly": "ro"}


class Shop:
    """rest_shop's account with a user of each role, an outsider, a renewable cvm; each
    actor signs with its own key on the native API and the compat endpoint."""

    def __init__(self, shop):
        self.rt, self.uin = shop.rt, shop.uin
        http = shop.customer.http
        outsider = new_account(self.rt, "perm-outsider")
        (order_id,) = buy(self.rt, self.uin)
        pay_as_system(self.rt, self.uin, [order_id])
        with transaction(self.rt.engine) as conn:
            self.cvm = orders.get_order(conn, OPS, self.uin, order_id)["resource_id"]
            keys = {"owner": shop.customer.key,
                    "outsider": auth.create_api_key(conn, self.rt.clock, OPS, outsider)}
            for role, login in ROLE_LOGIN.items():
                accounts.add_user(conn, self.rt.clock, OPS, self.uin, login, role)
                keys[role] = auth.create_api_key(conn, self.rt.clock, OPS, self.uin, login)
        self.rest = {a: Signed(self.rt, http, k) for a, k in keys.items()}
        self.compat = {a: CompatShop(self.rt, self.uin, k, http, self.rt.clock.now(), [], [],
                                     []) for a, k in keys.items()}

    def renewal(self) -> int:
        with transaction(self.rt.engine) as conn:
            return orders.create_renewal(conn, self.rt.clock, OPS, self.uin, self.cvm, 1)

    def do(self, actor: str, action: str) -> int | str:
        """The HTTP status (REST) or "ok" / the error code (compat) of one attempt."""
        adapter, name = action.split(" ")
        if adapter == "compat":
            answer = self.compat[actor].post(name, self.compat_body(name))
            return answer.json()["Response"].get("Error", {}).get("Code", "ok")
        rest, uin, n = self.rest[actor], self.uin, next(_SEQ)
        calls = {
            "read_account": lambda: rest.send("GET", f"/api/v1/accounts/{uin}"),
            "read_balance": lambda: rest.send("GET", f"/api/v1/accounts/{uin}/balance"),
            "create_project": lambda: rest.send("POST", f"/api/v1/accounts/{uin}/projects",
                                                {"name": f"p-{n}"}),
            "add_readonly_user": lambda: rest.send("POST", f"/api/v1/accounts/{uin}/users",
                                                   {"login": f"u-{n}", "role": "readonly"}),
            "renew": lambda: rest.send("POST", f"/api/v1/accounts/{uin}/resources/{self.cvm}"
                                       "/orders", {"action": "renew", "months": 1}),
            "read_renewal_order": lambda: rest.send(
                "GET", f"/api/v1/accounts/{uin}/orders/{self.renewal()}"),
            "void_renewal_order": lambda: rest.send(
                "POST", f"/api/v1/accounts/{uin}/orders/{self.renewal()}/void"),
            "read_purchase_order": lambda: rest.send(
                "GET", f"/api/v1/accounts/{uin}/orders/{buy(self.rt, uin)[0]}"),
            "pay": lambda: rest.send("POST", f"/api/v1/accounts/{uin}/payments", {
                "order_ids": [str(buy(self.rt, uin)[0])], "idempotency_key": f"k-{n}"}),
        }
        return calls[name]().status_code

    def compat_body(self, action: str) -> dict:
        span = {"StartTime": "2026-01-01 00:00:00", "EndTime": "2026-03-01 00:00:00"}
        return {"DescribeAccountBalance": {}, "DescribeBillList": span,
                "DescribeDealsByCond": span, "DescribeBillDetail": {"Month": "2026-03"},
                "PayDeals": {"OrderIds": [str(buy(self.rt, self.uin)[0])]}}[action]


_SEQ = iter(range(1, 10**6))


def test_every_permission_is_checked_where_its_action_happens_on_rest_and_compat(rest_shop):
    """Every role × every action of the table above, through both APIs: allowed is 2xx
    (REST) or no error (compat); refused is 403 PermissionDenied or UnauthorizedOperation.
    An admin renews (RENEWAL) and reads the renewal order; a finance user does not renew."""
    shop = Shop(rest_shop)
    wrong = []
    for action, allowed in MAY_DO.items():
        actors = ACTORS[:-1] if action.startswith("rest") else ACTORS[:4]
        for actor in actors:
            got = shop.do(actor, action)
            ok = got == "ok" or (isinstance(got, int) and 200 <= got < 300)
            refused = got in (403, "UnauthorizedOperation")
            if (actor in allowed and not ok) or (actor not in allowed and not refused):
                wrong.append((action, actor, got))
    assert wrong == []
