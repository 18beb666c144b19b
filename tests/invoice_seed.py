"""Builders shared by the invoice tests: verified accounts, titles, cash purchases."""

from __future__ import annotations

from stdnum.cn import uscc

from feecenter.accounts.permissions import SYSTEM
from feecenter.db.engine import transaction
from feecenter.invoices import service, titles
from feecenter.orders import service as orders
from tests.helpers import add_cash, buy, new_account, pay

USCC_A = "91310115MA1K4LXK21"
_B_BASE = "91110108MA01ABCDE"
USCC_B = _B_BASE + uscc.calc_check_digit(_B_BASE)
_C_BASE = "91110108592366240"
USCC_C = _C_BASE + uscc.calc_check_digit(_C_BASE)
COMPANY_A = "示例甲公司"
CVM_MONTH = 178_00  # cvm S5.MEDIUM4, one month, ap-guangzhou (sample catalog)
SPECIAL = {"address": "北京市海淀区示例路 1 号", "phone": "010-12345678", "bank": "示例银行北京分行",
           "bank_account": "6222020200012345678"}


def enterprise(rt, name: str = "acme", company: str = COMPANY_A, code: str = USCC_A,
               email: str | None = "finance@acme.example") -> int:
    return new_account(rt, name, enterprise_name=company, uscc=code, email=email)


def personal(rt, name: str = "zhang", person: str = "张三",
             email: str | None = "zhang@example.com") -> int:
    return new_account(rt, name, personal_name=person, email=email)


def enterprise_title(rt, uin: int, company: str = COMPANY_A, code: str = USCC_A,
                     special: bool = True) -> dict:
    fields = {"title_kind": "enterprise", "title": company, "tax_id": code,
              **(SPECIAL if special else {})}
    with transaction(rt.engine) as conn:
        return titles.set_title(conn, rt.clock, SYSTEM, uin, fields)


def personal_title(rt, uin: int, person: str = "张三") -> dict:
    with transaction(rt.engine) as conn:
        return titles.set_title(conn, rt.clock, SYSTEM, uin,
                                {"title_kind": "personal", "title": person})


def cash_purchase(rt, uin: int, *items, top_up: int | None = None) -> list[int]:
    """Top up (default: what the items cost, assumed ≤ 10,000 yuan) and buy and pay."""
    if top_up != 0:
        add_cash(rt, uin, top_up if top_up is not None else 10_000_00)
    ids = buy(rt, uin, *items)
    pay(rt, uin, ids)
    return ids


def order_row(rt, uin: int, order_id: int) -> dict:
    with rt.engine.connect() as conn:
        return orders.get_order(conn, SYSTEM, uin, order_id)


def apply(rt, uin: int, amount=None, kind: str = "ordinary", key: str = "k1", email=None):
    with transaction(rt.engine) as conn:
        return service.apply(conn, rt.clock, SYSTEM, uin, kind=kind, amount=amount, email=email,
                             request_key=key)
