"""The simulation's operations: what one step does to the product.

An operation is a plain JSON-able ``Op`` (the log a crashed run restarts from,
and a reproduction replays); ``execute`` runs it by calling one domain service
in one unit of work, the way tests/helpers.py does, and returns a JSON-able
result. A refusal (a domain error) is a result too: ``{"refused": code}``.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from stdnum.cn import uscc

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import SYSTEM, operator
from feecenter.arrears import service as arrears
from feecenter.balance_warnings import jobs as warning_jobs
from feecenter.balance_warnings import service as warning_service
from feecenter.catalog import service as catalog
from feecenter.clock import BUSINESS_TZ, business_date, business_time_text
from feecenter.coupons import rules as coupon_rules
from feecenter.coupons import service as coupons
from feecenter.db.engine import transaction
from feecenter.errors import FeeCenterError
from feecenter.funds import service as funds
from feecenter.invoices import issuing as invoice_issuing
from feecenter.invoices import reversals as invoice_reversals
from feecenter.invoices import service as invoice_service
from feecenter.invoices import titles as invoice_titles
from feecenter.invoices.tables import invoice_reversals as reversal_rows
from feecenter.jobs import runner
from feecenter.money import parse_yuan
from feecenter.orders import service as orders
from feecenter.orders.tables import orders as orders_table
from feecenter.periods import DAILY, HOURLY, period_containing
from feecenter.remittances import rules as remittance_rules
from feecenter.remittances import service as remittances
from feecenter.remittances.tables import remittances as remittance_records
from feecenter.remittances.transfer import Transfer
from feecenter.renewal import settings as renewal_settings
from feecenter.resources import postpaid
from feecenter.resources import service as resources
from feecenter.settlement import service as settlement
from feecenter.simulation.world import REGION, World, catalog_yaml
from feecenter.usage import service as usage
from feecenter.withdrawals import payouts as withdrawal_payouts
from feecenter.withdrawals import sending as withdrawal_sending
from feecenter.withdrawals import service as withdrawals
from feecenter.withdrawals.tables import withdrawals as withdrawal_rows

OPS = operator("simulator")
# safe to retry (crash-injected, duplicated): an idempotency key, event ids, a state claim
KEYED = {"adjust", "buy", "pay", "renew", "upgrade", "refund", "downgrade", "coupon", "open",
         "usage", "tick", "rerun", "deliver", "fail", "remit", "reverify", "auto_renew",
         "unified_day", "invoice_title", "invoice", "issue", "reverse", "withdraw",
         "balance_warning"}
CYCLES = {"hour": HOURLY, "day": DAILY}


@dataclass
class Op:
    step: int
    kind: str
    uin: int = 0
    args: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Op:
        return cls(**json.loads(text))


def execute(rt, op: Op) -> dict:
    """Run ``op`` once on ``rt`` (engine, FixedClock); the clock is set to ``op.args['at']``."""
    rt.clock.set(datetime.fromisoformat(op.args["at"]))
    try:
        with _resource_ids(op.step):
            return _RUN[op.kind](rt, op.uin, op.args) or {}
    except FeeCenterError as exc:
        return {"refused": exc.code}


@contextmanager
def _resource_ids(step: int):
    """Resource ids named by the step (random ones would order a settlement's lines,
    and so share its rounding, differently in each run of one seed)."""
    counter = itertools.count()
    real = resources.new_resource_id
    resources.new_resource_id = lambda product: f"{product}-{step:07d}{next(counter):03d}"
    try:
        yield
    finally:
        resources.new_resource_id = real


def setup(rt, world: World) -> list[int]:
    """The world's catalog, accounts, opening money and credit lines; their UINs."""
    with transaction(rt.engine) as conn:
        catalog.load_catalog(conn, rt.clock, OPS, catalog_yaml(world), "simulation.yaml")
    return [_open_account(rt, a) for a in world.accounts]


def _open_account(rt, account) -> int:
    if account.enterprise:
        base = f"91310115MA{int(account.name[3:]):07d}"
        new = accounts.NewAccount(name=account.name, enterprise_name=f"模拟企业 {account.name}",
                                  uscc=base + uscc.calc_check_digit(base))
    else:
        new = accounts.NewAccount(name=account.name, personal_name=f"模拟用户 {account.name}")
    with transaction(rt.engine) as conn:
        uin = accounts.create_account(conn, rt.clock, OPS, new)
        for sub, amount in (("cash", account.cash), ("gift", account.gift)):
            if amount:
                funds.adjust(conn, rt.clock, OPS, uin, sub_account=sub, amount=amount,
                             reason="opening", key=f"open:{account.name}:{sub}")
        if account.credit:
            funds.grant_credit(conn, rt.clock, OPS, uin, credit_limit=account.credit)
    return uin


# ---------------------------------------------------------------- one function per kind

def _adjust(rt, uin, a):
    with transaction(rt.engine) as conn:
        m = funds.adjust(conn, rt.clock, OPS, uin, sub_account=a["sub"], amount=a["fen"],
                         reason="simulated top-up", key=a["key"])
    return {"created": m.created}


def _buy(rt, uin, a):
    with transaction(rt.engine) as conn:
        ids = orders.create_purchase(conn, rt.clock, SYSTEM, uin, [
            orders.NewPurchase(product=p, region=REGION, spec_item=s, count=c, months=m,
                               resource_name=label) for p, s, c, m, label in a["items"]],
            key=a["key"])
        rids = dict(conn.execute(select(orders_table.c.id, orders_table.c.resource_id)
                                 .where(orders_table.c.id.in_(ids))).all())
    return {"order_ids": ids, "rids": [rids[i] for i in ids]}


def _pay(rt, uin, a):
    with transaction(rt.engine) as conn:
        paid = orders.pay(conn, rt.clock, SYSTEM, uin, a["order_ids"], key=a["key"])
    return {k: paid[k] for k in ("created", "amount", "coupon", "gift", "cash", "credit")}


def _deliver(rt, uin, a):
    with transaction(rt.engine) as conn:
        orders.deliver(conn, rt.clock, OPS, a["order_id"])


def _fail(rt, uin, a):
    with transaction(rt.engine) as conn:
        orders.fail_delivery(conn, rt.clock, OPS, a["order_id"], "simulated failure")


def _renew(rt, uin, a):
    with transaction(rt.engine) as conn:
        return {"order_ids": [orders.create_renewal(conn, rt.clock, SYSTEM, uin, a["rid"],
                                                    a["months"], key=a["key"])]}


def _auto_renew(rt, uin, a):
    """RNW-1/RNW-4: a resource's auto-renew flag (and term), or the account's default."""
    with transaction(rt.engine) as conn:
        if a.get("rid") is None:
            renewal_settings.set_account_default(conn, rt.clock, SYSTEM, uin, a["on"])
        else:
            renewal_settings.set_auto_renew(conn, rt.clock, SYSTEM, uin, [a["rid"]],
                                            auto_renew=a["on"], months=a.get("months"))


def _unified_day(rt, uin, a):
    """RNW-5: the account's unified expiry day, or none."""
    with transaction(rt.engine) as conn:
        renewal_settings.set_unified_day(conn, rt.clock, SYSTEM, uin, a["day"])


def _upgrade(rt, uin, a):
    with transaction(rt.engine) as conn:
        return {"order_ids": [orders.create_upgrade(conn, rt.clock, SYSTEM, uin, a["rid"],
                                                    a["spec"], key=a["key"])]}


def _refund(rt, uin, a):
    with transaction(rt.engine) as conn:
        return {"order_id": orders.refund_resource(conn, rt.clock, SYSTEM, uin, a["rid"],
                                                   key=a["key"])}


def _downgrade(rt, uin, a):
    with transaction(rt.engine) as conn:
        return {"order_id": orders.downgrade(conn, rt.clock, SYSTEM, uin, a["rid"], a["spec"],
                                             key=a["key"])}


def _coupon(rt, uin, a):
    terms = coupon_rules.Terms(kind="cash", pay_mode="prepaid", face_amount=a["fen"],
                               valid_days=30)
    with transaction(rt.engine) as conn:
        return {"coupon_id": coupons.grant(conn, rt.clock, OPS, uin, terms, campaign="sim",
                                           key=a["key"])}


def _open(rt, uin, a):
    with transaction(rt.engine) as conn:
        return {"rid": postpaid.open_postpaid(conn, rt.clock, SYSTEM, uin, product=a["product"],
                                              region=REGION, spec_item=a["spec"],
                                              count=a["count"], name=a["label"],
                                              key=a["key"])}


def _usage(rt, uin, a):
    text = "\n".join(json.dumps({
        "event_id": event, "uin": uin, "resource_id": rid, "billing_item": item,
        "quantity": quantity, "usage_start": business_time_text(datetime.fromisoformat(s)),
        "usage_end": business_time_text(datetime.fromisoformat(e))})
        for event, rid, item, quantity, s, e in a["records"])
    result = usage.ingest(rt.engine, rt.clock, OPS, text)
    return {"accepted": result.accepted, "duplicates": result.duplicates,
            "rejected": [r.reason_en for r in result.rejections],
            "rejected_ids": [r.event_id for r in result.rejections]}


def _remit(rt, uin, a):
    """One bank transfer to the account's dedicated number, imported as a one-line
    statement; its bank reference makes a retry or a duplicate harmless (RMT-2)."""
    with transaction(rt.engine) as conn:
        number = remittances.receiving_details(conn, rt.clock, OPS, uin)["accounts"][0]["number"]
        entity = accounts.get_account(conn, SYSTEM, uin)["entity_name"]
        transfer = Transfer(
            bank_reference=a["ref"], receiving_account=number[:15], payee_account=number,
            payer_name=entity if a["payer"] == "entity" else f"代付公司 {a['ref']}",
            payer_account="6222020200000000", payer_bank="模拟银行", amount=a["fen"],
            currency="CNY", memo="保证金" if a["memo"] == "restricted" else "货款",
            value_date=business_date(rt.clock.now()))
        remittances.import_transfers(conn, rt.clock, OPS, [transfer], source="simulation",
                                     digest=a["ref"])
    return {"state": _remittance_state(rt, a["ref"])}


def _reverify(rt, uin, a):
    """RMT-5: the owner registers the payer and asks for re-verification; a retry
    finds the transfer credited already and asks nothing."""
    with transaction(rt.engine) as conn:
        record = conn.execute(select(remittance_records.c.id, remittance_records.c.state,
                                     remittance_records.c.payer_name)
                              .where(remittance_records.c.bank_reference == a["ref"])).one()
        remittances.register_payer(conn, rt.clock, OPS, uin, record.payer_name)
        if record.state in remittance_rules.REVERIFIABLE:
            remittances.request_reverification(conn, rt.clock, OPS, uin, record.id)
    return {"state": _remittance_state(rt, a["ref"])}


def _remittance_state(rt, ref: str) -> str:
    with rt.engine.connect() as conn:
        return conn.execute(select(remittance_records.c.state)
                            .where(remittance_records.c.bank_reference == ref)).scalar_one()


def _invoice_title(rt, uin, a):
    """INV-3: the account's title, equal to its verified entity (an enterprise's with its
    USCC, and with ``special`` the special-invoice details, INV-2); with ``wrong``, a
    title that is not the verified entity (refused: company A cannot invoice company B)."""
    with transaction(rt.engine) as conn:
        account = accounts.get_account(conn, SYSTEM, uin)
        name = account["entity_name"] + (" 另一家" if a.get("wrong") else "")
        fields = {"title_kind": account["realname_state"], "title": name}
        if account["realname_state"] == "enterprise":
            fields["tax_id"] = account["uscc"]
            if a.get("special"):
                fields.update(address="上海市浦东新区模拟路 1 号", phone="021-55550000",
                              bank="模拟银行上海分行", bank_account="6222020200001234")
        view = invoice_titles.set_title(conn, rt.clock, SYSTEM, uin, fields)
        if not invoice_titles.list_emails(conn, SYSTEM, uin):  # no contact email either
            invoice_titles.add_email(conn, rt.clock, SYSTEM, uin, f"{uin}@invoice.example",
                                     make_default=True)
    return {"title_kind": view["title_kind"], "special_ready": view["special_ready"]}


def _invoice(rt, uin, a):
    """申请开票 (INV-1, INV-2, INV-4): ``amount`` (yuan text, None: all available) of
    ``kind`` under the request key ``key``; a repeat of the key returns the first."""
    with transaction(rt.engine) as conn:
        made = invoice_service.apply(conn, rt.clock, OPS, uin, kind=a["kind"],
                                     amount=a["amount"], email=None, request_key=a["key"])
    return {"application_id": made["application_id"],
            "invoices": [{"id": i["id"], "entity": i["entity"], "amount": i["amount"],
                          "lines": [[line["tax_category"], line["amount"], line["tax_amount"]]
                                    for line in i["lines"]]} for i in made["invoices"]]}


def _issue(rt, uin, a):
    """INV-5: the issuing sweeper run now (what the hourly job does)."""
    from feecenter.config import load_settings

    return {"issued": invoice_issuing.issue_pending(rt.engine, rt.clock,
                                                   load_settings())["issued"]}


def _reverse(rt, uin, a):
    """INV-6: a reversal of an issued invoice submitted (treatment ``none``, ``booked``
    with its red-letter number, or ``deducted`` waiting for it, then given), and an
    operator's release or rejection, in one unit of work. The product has no request
    key for reversals: the explanation carries the op's ``key``, and a retry that finds
    its reversal returns it instead of submitting another."""
    with transaction(rt.engine) as conn:
        explanation = f"模拟退票 {a['key']}"
        found = conn.execute(select(reversal_rows.c.id, reversal_rows.c.state,
                                    reversal_rows.c.red_invoice_id)
                             .where(reversal_rows.c.uin == uin,
                                    reversal_rows.c.explanation == explanation)).first()
        if found is not None:
            return {"reversal_id": found.id, "state": found.state,
                    "red_invoice_id": found.red_invoice_id}
        number = f"RL{a['key'].split(':')[-1]:0>10}"
        row = invoice_reversals.submit(
            conn, rt.clock, SYSTEM, uin, a["invoice_id"], treatment=a["treatment"],
            red_letter_no=number if a["treatment"] == "booked" else None,
            reason=a["reason"], explanation=explanation)
        if row["state"] == invoice_reversals.RED_LETTER_PENDING:
            invoice_reversals.set_red_letter_no(conn, rt.clock, SYSTEM, uin, row["id"], number)
        if a["decision"] == "release":
            row = invoice_reversals.release(conn, rt.clock, OPS, row["id"])
        else:
            row = invoice_reversals.reject(conn, rt.clock, OPS, row["id"], "模拟驳回：信息不符")
    return {"reversal_id": row["id"], "state": row["state"],
            "red_invoice_id": row["red_invoice_id"]}


def _withdraw(rt, uin, a):
    """提现 (WDR-1..4): ``fen`` by ``route`` (offline: to a bank account in the verified
    entity's name) under the key ``key``, with the takeable amount read just before
    (one step runs alone) so the model judges it; ``replayed``: the key had made the
    withdrawal before (a retry after a killed attempt that committed)."""
    with rt.engine.connect() as conn:
        takeable = withdrawals.withdrawable(conn, rt.clock, OPS, uin)["takeable"]
        replayed = conn.execute(select(withdrawal_rows.c.id).where(
            withdrawal_rows.c.uin == uin, withdrawal_rows.c.request_key == a["key"])
        ).scalar() is not None
    try:
        with transaction(rt.engine) as conn:
            bank = None
            if a["route"] == "offline":
                bank = {"holder": accounts.get_account(conn, SYSTEM, uin)["entity_name"],
                        "account_no": "6222020200009999", "bank": "模拟银行",
                        "branch": "模拟支行"}
            made = withdrawals.apply(conn, rt.clock, OPS, uin, amount=a["fen"],
                                     route=a["route"], key=a["key"], bank=bank)
    except FeeCenterError as exc:
        return {"refused": exc.code, "takeable": takeable}
    return {"id": made["id"], "amount": made["amount"], "takeable": takeable,
            "replayed": replayed, "legs": [[leg["source"], leg["amount"]] for leg in made["legs"]]}


def _payout(rt, uin, a):
    """WDR-2/3/5, the operators' side: the sending job's pass (online refunds: none in
    this world, whose money comes from adjustments and remittances), every queued bank
    leg exported as a payout batch and the bank's answer imported (a leg whose id is a
    multiple of ``fail_every`` failed), then each failed withdrawal reviewed: returned
    to cash, or paid offline when its id's parity is ``offline_parity``."""
    withdrawal_sending.send_pending(rt.engine, rt.clock, {})
    out = {"paid": [], "returned": [], "rerouted": []}
    with transaction(rt.engine) as conn:
        if withdrawal_payouts.payout_queue(conn, OPS):
            batch = withdrawal_payouts.export_batch(conn, rt.clock, OPS)
            rows = list(csv.DictReader(io.StringIO(batch["csv"])))
            lines = ["leg_id,result,reason"] + [
                f"{r['leg_id']},failed,模拟：收款账户已销户" if int(r["leg_id"]) % a["fail_every"] == 0
                else f"{r['leg_id']},paid," for r in rows]
            withdrawal_payouts.import_batch_result(conn, rt.clock, OPS, batch["batch_id"],
                                                   "\n".join(lines))
            out["paid"] = [[int(r["uin"]), parse_yuan(r["amount"])] for r in rows
                           if int(r["leg_id"]) % a["fail_every"]]
        for failed in withdrawal_payouts.failed_reviews(conn, OPS):
            out[_review(rt, conn, failed, a["offline_parity"])].append(
                [failed["id"], failed["uin"], *_failed_amounts(failed)])
    return out


def _failed_amounts(withdrawal: dict) -> tuple[int, int]:
    """(fen in failed legs, of which from remittances: the original route's to give back)."""
    failed = [leg for leg in withdrawal["legs"] if leg["state"] == "failed"]
    return (sum(leg["amount"] for leg in failed),
            sum(leg["amount"] for leg in failed if leg["source"] == "remittance"))


def _review(rt, conn, withdrawal: dict, offline_parity: int) -> str:
    if withdrawal["id"] % 2 == offline_parity:
        entity = accounts.get_account(conn, SYSTEM, withdrawal["uin"])["entity_name"]
        withdrawal_payouts.pay_offline(conn, rt.clock, OPS, withdrawal["id"], {
            "holder": entity, "account_no": "6222020200008888", "bank": "模拟银行",
            "branch": "模拟二支行"}, reason="模拟：客户提供新账户")
        return "rerouted"
    withdrawal_payouts.return_to_cash(conn, rt.clock, OPS, withdrawal["id"],
                                      reason="模拟：原路账户已注销，退回现金")
    return "returned"


def _balance_warning(rt, uin, a):
    """XTR-2: the owner's warning settings (``days`` 1-30 or None: off, ``amount`` fen or
    None; a key left out: kept), sometimes invalid (refused, nothing written), then the
    daily warning run for today once its 02:00 has passed (what the job does; notices
    keyed by account and day, so the job's own run sends nothing twice)."""
    out = {}
    try:
        with transaction(rt.engine) as conn:
            made = warning_service.update_settings(conn, rt.clock, SYSTEM, uin, **{
                k: a[k] for k in ("days", "amount") if k in a})
        out.update(made.to_dict())
    except FeeCenterError as exc:
        out.update(refused=exc.code, field=exc.field)
    now = rt.clock.now()
    day = business_date(now)
    end = datetime.combine(day, datetime.min.time(), BUSINESS_TZ) + warning_jobs.LAG
    if now >= end:
        out["run"] = warning_service.warn(rt.engine, rt.clock, day, end)
    return out


def _tick(rt, uin, a):
    """The job runner's pass at this hour: settlement, expiry, arrears, coupons."""
    report = runner.run_pass(rt.engine, rt.clock, worker_id="simulator")
    return {"failed": sorted(f"{o.job}@{o.period_key}: {o.error}" for o in report.runs.outcomes
                             if o.outcome not in ("done", "retry")),
            "retried": sorted(f"{o.job}@{o.period_key}: {o.error}" for o in report.runs.outcomes
                              if o.outcome == "retry")}


def _rerun(rt, uin, a):
    """A job run again, out of order: an earlier period settled again, or escalation."""
    if a["job"] == "escalate":
        arrears.escalate(rt.engine, rt.clock)
        return {}
    period = period_containing(CYCLES[a["job"]], datetime.fromisoformat(a["period_at"]))
    result = settlement.settle_period(rt.engine, rt.clock, a["job"], period)
    return {"accounts": result["accounts"]}


_RUN = {"adjust": _adjust, "buy": _buy, "pay": _pay, "deliver": _deliver, "fail": _fail,
        "renew": _renew, "upgrade": _upgrade, "refund": _refund, "downgrade": _downgrade,
        "coupon": _coupon, "open": _open, "usage": _usage, "tick": _tick, "rerun": _rerun,
        "remit": _remit, "reverify": _reverify, "auto_renew": _auto_renew,
        "unified_day": _unified_day, "invoice_title": _invoice_title, "invoice": _invoice,
        "issue": _issue, "reverse": _reverse, "withdraw": _withdraw, "payout": _payout,
        "balance_warning": _balance_warning}


def hour_before(at: datetime) -> tuple[datetime, datetime]:
    end = at.replace(minute=0, second=0, microsecond=0)
    return end - timedelta(hours=1), end
