"""Choosing the next operation: a seeded ``random.Random`` and what the model
knows (accounts, orders, resources), plus the product's live resources for
usage. The same seed and the same product answers give the same operations.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from feecenter.simulation.model import Model
from feecenter.simulation.ops import Op

# kind -> weight; "tick" (an hour passes, the job runner runs) is placed evenly by the driver
WEIGHTS = {"adjust": 6, "buy": 8, "pay": 9, "deliver": 3, "fail": 1, "renew": 3, "upgrade": 2,
           "refund": 2, "downgrade": 2, "coupon": 2, "open": 5, "usage": 18, "late": 3,
           "rerun": 2, "remit": 2, "reverify": 1, "auto_renew": 2, "unified_day": 1}
KINDS, CUM = list(WEIGHTS), list(WEIGHTS.values())
# Invoices move no money: an invoice operation follows some steps' operation, chosen
# with the model's own ``invoice_rng``, so every other operation is what it would be
INVOICE_SHARE = 0.1  # of the steps
INVOICE_WEIGHTS = {"invoice_title": 1, "invoice": 4, "issue": 1, "reverse": 2}
# Withdrawals (WDR) likewise follow some steps, from ``model.withdrawal_rng``: an
# application (original route or offline), or the operators' payout step
WITHDRAWAL_SHARE = 0.04  # of the steps
WITHDRAWAL_WEIGHTS = {"withdraw": 3, "payout": 1}
# Balance warnings (XTR-2) likewise, from ``model.warning_rng``: the owner's settings
# (now and then invalid) and the day's warning run
WARNING_SHARE = 0.02  # of the steps
WARNING_DAYS = [None, 1, 5, 5, 10, 30, 0, 31, "5"]  # the last three refused
WARNING_AMOUNTS = [None, None, 100_00, 5_000_00, 1_000_000_00, 0, -1_00]  # 0, -1.00 refused


def next_op(rng: random.Random, model: Model, step: int, now: datetime,
            uins: list[int] | None = None) -> Op:
    """One operation for ``step`` at ``now`` on one of ``uins`` (default: any account);
    a kind with nothing to act on becomes a top-up."""
    uin = rng.choice(uins or model.uins)
    kind = rng.choices(KINDS, CUM)[0]
    args = _ARGS[kind](rng, model, uin, step, now)
    if args is None:
        kind, args = "adjust", _adjust(rng, model, uin, step, now)
    kind = "usage" if kind == "late" else kind
    return Op(step, kind, uin, {**args, "at": now.isoformat()})


def _adjust(rng, model, uin, step, now):
    return {"sub": rng.choice(["cash", "cash", "gift"]),
            "fen": rng.choice([1_00, 20_00, 100_00, 1_000_00]), "key": f"adj:{step}"}


def _buy(rng, model, uin, step, now):
    items = []
    for n in range(rng.choice([1, 1, 2])):
        product = rng.choice(["vm", "vm", "cert", "objpack"])
        spec = rng.choice(model.world.product(product).specs)
        items.append([product, spec, rng.choice([1, 1, 2]), rng.choice([1, 1, 2, 3]),
                      f"p{step}-{n}"])
    return {"items": items, "key": f"buy:{step}"}


def _unpaid(model, uin):
    return sorted(i for i in model.orders_of[uin] if model.orders[i].state == "unpaid")


def _pay(rng, model, uin, step, now):
    unpaid = _unpaid(model, uin)
    if not unpaid:
        return None
    return {"order_ids": rng.sample(unpaid, min(len(unpaid), rng.choice([1, 2, 3]))),
            "key": f"pay:{step}"}


def _awaiting(rng, model, uin, step, now):
    paid = sorted(model.awaiting)
    return {"order_id": rng.choice(paid)} if paid else None


def _prepaid(model, uin, product=None, now=None, states=("running",)):
    """The account's delivered prepaid resources in ``states``; with ``now``, only
    those not expired yet (an expired one waits for its renewal or its stop)."""
    return sorted(label for label in model.labels_of[uin]
                  if (r := model.resources[label]).pay_mode == "prepaid" and r.live
                  and r.state in states and product in (None, r.product)
                  and (now is None or r.expires > now))


def _renew(rng, model, uin, step, now):
    """A manual renewal of a running resource, or of one in the recycle bin (RNW-6)."""
    labels = _prepaid(model, uin, states=("running", "stopped"))
    return {"label": (label := rng.choice(labels)), "rid": model.resources[label].rid,
            "months": rng.choice([1, 2]), "key": f"renew:{step}"} if labels else None


def _change(up: bool):
    def choose(rng, model, uin, step, now):
        labels = _prepaid(model, uin, "vm", now)
        if not labels:
            return None
        res = model.resources[label := rng.choice(labels)]
        specs = model.world.product("vm").specs
        others = [s for s in specs if (specs.index(s) > specs.index(res.spec)) == up
                  and s != res.spec]
        if not others:
            return None
        return {"label": label, "rid": res.rid, "spec": rng.choice(others),
                "key": f"{'up' if up else 'down'}:{step}"}
    return choose


def _refund(rng, model, uin, step, now):
    labels = _prepaid(model, uin, now=now)
    return ({"label": (label := rng.choice(labels)), "rid": model.resources[label].rid,
             "key": f"refund:{step}"} if labels else None)


def _auto_renew(rng, model, uin, step, now):
    """A resource's flag on or off, sometimes with a term of 1 or 2 months (RNW-1), or
    the account's default (a quarter of the time)."""
    labels = _prepaid(model, uin, states=("running", "stopped"))
    on = rng.random() < 0.7
    if not labels or rng.random() < 0.25:
        return {"on": on, "rid": None}
    label = rng.choice(labels)
    return {"label": label, "rid": model.resources[label].rid, "on": on,
            "months": rng.choice([None, None, 1, 2])}


def _unified_day(rng, model, uin, step, now):
    """RNW-5: a unified expiry day (1-28) or none."""
    return {"day": rng.choice([None, 1, 5, 10, 15, 28])}


def _remit(rng, model, uin, step, now):
    """A transfer to the account's dedicated number: mostly from its own verified name,
    some from a payer it has not registered, a few with a restricted memo (RMT-4/6)."""
    return {"ref": f"rmt{step}", "fen": rng.choice([50_00, 300_00, 2_000_00]),
            "payer": rng.choice(["entity", "entity", "stranger"]),
            "memo": rng.choice(["order"] * 9 + ["restricted"])}


def _reverify(rng, model, uin, step, now):
    waiting = model.waiting_remittances(uin)
    return {"ref": rng.choice(waiting)} if waiting else None


def _coupon(rng, model, uin, step, now):
    return {"fen": rng.choice([5_00, 30_00, 200_00]), "key": f"coupon:{step}"}


POSTPAID = [("vm", None, 1), ("disk", "hdd", 50), ("db", "m1", 1), ("obj", None, 1),
            ("lic", "seat", 3)]


def _open(rng, model, uin, step, now):
    product, spec, count = rng.choice(POSTPAID)
    spec = spec or rng.choice(model.world.product(product).specs or ["-"])
    return {"product": product, "spec": spec if spec != "-" else "store", "count": count,
            "label": f"u{step}", "key": f"open:{step}"}


def _usage(late: bool):
    def choose(rng, model, uin, step, now):
        back = rng.randint(2, 30) if late else 1
        end = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=back - 1)
        start = end - timedelta(hours=1)
        live = sorted(label for label in model.labels_of[uin]
                      if (r := model.resources[label]).pay_mode == "postpaid" and r.live
                      and r.since <= start)
        if not live:
            return None
        return {"records": [r for label in live for r in _records(rng, model, label, start,
                                                                  end, step)]}
    return choose


def _records(rng, model, label, start, end, step):
    res = model.resources[label]
    product = model.world.product(res.product)
    out = []
    for item in product.items:
        if item.spec and item.code != res.spec:
            continue
        if item.spec:
            quantity = f"{res.count}"
        else:
            quantity = f"{rng.randint(0, 5000) / 100:.2f}"
        out.append([f"{label}:{item.code}:{start.isoformat()}:{step}", res.rid, item.code,
                    quantity, start.isoformat(), end.isoformat()])
    return out


def _rerun(rng, model, uin, step, now):
    """A settlement run again out of the runner's order: an earlier period, 2-48 hours
    or 2-5 days back, whose late usage a late pass may have billed already (SET-8,
    SET-9); without ``model.rerun_settled`` (``--rerun-latest-only``), the period just
    ended, before the runner settles it after its metering grace (the next tick)."""
    job = rng.choice(["hour", "day", "escalate"])
    if model.rerun_settled:
        back = (timedelta(hours=rng.randint(2, 48)) if job == "hour"
                else timedelta(days=rng.randint(2, 5)))
    else:
        back = timedelta(hours=1) if job == "hour" else timedelta(days=1)
    return {"job": job, "period_at": (now - back).isoformat()}


def invoice_op(model: Model, step: int, now: datetime) -> Op | None:
    """After INVOICE_SHARE of the steps, an invoice operation on a random account, at
    the step's time, from ``model.invoice_rng`` alone (None: no invoice operations)."""
    rng = model.invoice_rng
    if rng is None or rng.random() >= INVOICE_SHARE:
        return None
    uin = rng.choice(model.uins)
    kind = rng.choices(list(INVOICE_WEIGHTS), list(INVOICE_WEIGHTS.values()))[0]
    if kind == "invoice" and uin not in model.titles and rng.random() < 0.9:
        kind = "invoice_title"  # a title first (a tenth of the time: applied without)
    args = _ARGS[kind](rng, model, uin, step, now)
    return None if args is None else Op(step, kind, uin, {**args, "at": now.isoformat()})


def withdrawal_op(model: Model, step: int, now: datetime) -> Op | None:
    """After WITHDRAWAL_SHARE of the steps, a withdrawal or a payout step at the step's
    time, from ``model.withdrawal_rng`` alone (None: no withdrawal operations)."""
    rng = model.withdrawal_rng
    if rng is None or rng.random() >= WITHDRAWAL_SHARE:
        return None
    uin = rng.choice(model.uins)
    kind = rng.choices(list(WITHDRAWAL_WEIGHTS), list(WITHDRAWAL_WEIGHTS.values()))[0]
    if kind == "payout":
        return Op(step, "payout", 0, {"fail_every": rng.choice([2, 3, 5]),
                                      "offline_parity": rng.randint(0, 1),
                                      "at": now.isoformat()})
    return Op(step, "withdraw", uin, {**_withdraw(rng, model, uin, step), "at": now.isoformat()})


def warning_op(model: Model, step: int, now: datetime) -> Op | None:
    """After WARNING_SHARE of the steps, an account's warning settings (each of days and
    amount given 3 times in 5, kept otherwise) and the day's warning run, at the
    step's time, from ``model.warning_rng`` alone (None: no warning operations)."""
    rng = model.warning_rng
    if rng is None or rng.random() >= WARNING_SHARE:
        return None
    uin, args = rng.choice(model.uins), {"at": now.isoformat()}
    if rng.random() < 0.6:
        args["days"] = rng.choice(WARNING_DAYS)
    if rng.random() < 0.6:
        args["amount"] = rng.choice(WARNING_AMOUNTS)
    return Op(step, "balance_warning", uin, args)


def _withdraw(rng, model, uin, step):
    """WDR-1..3: a part of what the model last saw takeable (sometimes all of it, now
    and then more: refused), by the original route (the remittances it came from) or
    offline; a tenth of the time an earlier application's key again (the same request)."""
    earlier = model.withdraw_requests.get(uin)
    if earlier and rng.random() < 0.1:
        return dict(rng.choice(earlier))
    seen, roll = model.takeable_seen.get(uin, 0), rng.random()
    if seen <= 0 or roll < 0.1:
        fen = rng.choice([1_00, 50_00, 500_00])
    elif roll < 0.8:
        fen = max(seen * rng.randint(1, 60) // 100, 1)
    elif roll < 0.9:
        fen = seen
    else:
        fen = seen + rng.choice([1, 100, 10_000])
    route = "original" if rng.random() < 0.4 else "offline"
    return {"route": route, "fen": fen, "key": f"wdr:{step}"}


def _invoice_title(rng, model, uin, step, now):
    """INV-3: the verified entity as title, an enterprise's sometimes with the special
    details (INV-2); now and then a title that is not the verified entity."""
    return {"special": rng.random() < 0.5, "wrong": rng.random() < 0.1}


def _invoice(rng, model, uin, step, now):
    """An application: all available or a part of what the model last saw available
    (sometimes more); special when the title allows it (now and then when it does not);
    a tenth of the time an earlier application's request key again (INV-1, INV-2)."""
    earlier = model.invoice_requests.get(uin)
    if earlier and rng.random() < 0.1:
        return dict(rng.choice(earlier))
    title = model.titles.get(uin)
    special = title is not None and title[1] and rng.random() < 0.4
    kind = "special" if special or rng.random() < 0.05 else "ordinary"
    seen, roll = model.available_seen.get(uin, 0), rng.random()
    if seen <= 0 and rng.random() < 0.7:
        return None  # mostly refused: nothing was available when last seen
    if seen <= 0 or roll < 0.4:
        amount = None
    elif roll < 0.9:
        amount = max(seen * rng.randint(1, 100) // 100, 1)
    else:
        amount = seen + rng.choice([1, 100, 10_000])
    return {"kind": kind, "key": f"inv:{step}",
            "amount": None if amount is None else f"{amount // 100}.{amount % 100:02d}"}


def _issue(rng, model, uin, step, now):
    return {}


def _reverse(rng, model, uin, step, now):
    """INV-6: a reversal of an invoice the model knows issued and not reversed; the
    operator releases it (three times in five) or rejects it."""
    issued = model.reversible(uin)
    if not issued:
        return None
    return {"invoice_id": rng.choice(issued), "key": f"rev:{step}",
            "treatment": rng.choice(["none", "booked", "deducted"]),
            "reason": rng.choice(["wrong_details", "invoice_debt"]),
            "decision": "release" if rng.random() < 0.6 else "reject"}


_ARGS = {"adjust": _adjust, "buy": _buy, "pay": _pay, "deliver": _awaiting, "fail": _awaiting,
         "renew": _renew, "upgrade": _change(True), "refund": _refund,
         "downgrade": _change(False), "coupon": _coupon, "open": _open,
         "usage": _usage(False), "late": _usage(True), "rerun": _rerun, "remit": _remit,
         "reverify": _reverify, "auto_renew": _auto_renew, "unified_day": _unified_day,
         "invoice_title": _invoice_title, "invoice": _invoice, "issue": _issue,
         "reverse": _reverse}
