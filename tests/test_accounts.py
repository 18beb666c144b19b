"""Customer accounts: UINs, real-name, sub-users and permissions, states (ACC-1..4)."""

import pytest
from sqlalchemy import func, select

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import SYSTEM, Actor, require, FINANCE, RENEWAL
from feecenter.accounts.tables import customers
from feecenter.errors import Conflict, InvalidInput, PermissionDenied
from feecenter.funds import service as funds
from tests.helpers import OPS, new_account

VALID_USCC = "91110108551385082Q"


@pytest.mark.spec("ACC-1")
def test_numeric_uins_and_real_name_states(rt):
    personal = new_account(rt, "person", personal_name="王五", email="w@x.cn", phone="13800000000")
    company = new_account(rt, "company", enterprise_name="北京示例科技有限公司", uscc=VALID_USCC)
    plain = new_account(rt, "plain")
    assert company == personal + 1 and plain == company + 1 and personal >= 100000000001
    with rt.engine.connect() as conn:
        rows = {r["name"]: r for r in (accounts.get_account(conn, SYSTEM, u)
                                       for u in (personal, company, plain))}
    assert (rows["person"]["realname_state"], rows["person"]["entity_name"]) == ("personal", "王五")
    assert rows["company"]["uscc"] == VALID_USCC
    assert rows["plain"]["realname_state"] == "none"
    with rt.engine.begin() as conn:
        accounts.set_realname(conn, rt.clock, OPS, company, "abnormal")
        assert accounts.get_account(conn, SYSTEM, company)["realname_state"] == "abnormal"


@pytest.mark.spec("ACC-1")
@pytest.mark.parametrize("bad, field", [
    ({"enterprise_name": "X", "uscc": "91110108551385082A"}, "uscc"),
    ({"enterprise_name": "X", "uscc": "123"}, "uscc"),
    ({"email": "not-an-email"}, "email"),
    ({"phone": "call me"}, "phone"),
    ({"personal_name": "A", "enterprise_name": "B", "uscc": VALID_USCC}, "realname"),
])
def test_bad_account_input_names_the_field_and_writes_nothing(rt, bad, field):
    with pytest.raises(InvalidInput) as err:
        new_account(rt, "bad", **bad)
    assert err.value.field == field and err.value.message_zh and err.value.message_en
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(customers)).scalar_one() == 0


def test_duplicate_names_are_refused(rt):
    new_account(rt, "twin")
    with pytest.raises(Conflict) as err:
        new_account(rt, "twin")
    assert err.value.field == "name"


@pytest.mark.spec("ACC-2")
def test_permissions_by_role():
    uin = 100000000001
    def actor(role, on=uin):
        return Actor("user", role, uin=on, user_id=1, role=role)
    require(actor("owner"), uin, FINANCE)
    require(actor("finance"), uin, FINANCE)
    for role in ("admin", "readonly"):
        with pytest.raises(PermissionDenied):
            require(actor(role), uin, FINANCE)
    require(actor("admin"), uin, RENEWAL)
    for role in ("finance", "readonly"):
        with pytest.raises(PermissionDenied):
            require(actor(role), uin, RENEWAL)
    with pytest.raises(PermissionDenied):
        require(actor("owner", on=uin + 1), uin, FINANCE)


@pytest.mark.spec("ACC-2")
def test_sub_users_and_collaborators_need_finance_for_money(rt):
    uin = new_account(rt, "team")
    with rt.engine.begin() as conn:
        fin = accounts.add_user(conn, rt.clock, OPS, uin, "collab-fin", "finance", "collaborator")
        ro = accounts.add_user(conn, rt.clock, OPS, uin, "reader", "readonly")
        with pytest.raises(InvalidInput):
            accounts.add_user(conn, rt.clock, OPS, uin, "boss2", "owner")
    with rt.engine.connect() as conn:
        fin_actor, ro_actor = accounts.user_actor(conn, fin), accounts.user_actor(conn, ro)
        assert funds.balance_view(conn, rt.clock, fin_actor, uin).cash == 0
        with pytest.raises(PermissionDenied) as err:
            funds.list_transactions(conn, ro_actor, uin, funds.StatementQuery())
        assert "财务" in err.value.message_zh and "finance" in err.value.message_en
    with rt.engine.begin() as conn, pytest.raises(PermissionDenied):
        accounts.add_user(conn, rt.clock, ro_actor, uin, "sneaky", "finance")


@pytest.mark.spec("ACC-4")
def test_account_states(rt):
    uin = new_account(rt, "stateful")
    with rt.engine.begin() as conn:
        assert accounts.account_state(conn, rt.clock, uin) == "normal"
        accounts.set_status(conn, rt.clock, OPS, uin, "restricted")
        assert accounts.account_state(conn, rt.clock, uin) == "restricted"
        accounts.set_status(conn, rt.clock, OPS, uin, "normal")
        assert accounts.account_state(conn, rt.clock, uin) == "normal"
        funds.spend(conn, rt.clock, uin, 100, key="usage", postpaid=True,
                    revenue_account_id=funds.platform_account(conn, rt.clock, "revenue"))
        assert accounts.account_state(conn, rt.clock, uin) == "arrears"
        with pytest.raises(InvalidInput):
            accounts.set_status(conn, rt.clock, OPS, uin, "frozen-solid")
