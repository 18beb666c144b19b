"""How a cancellation (ACC-5) is shown: the blockers with their amounts as yuan
strings, the gift that would be forfeited, the outcome of a cancellation."""

from __future__ import annotations

from feecenter.money import format_yuan


def blocker_json(blocker: dict) -> dict:
    out = dict(blocker)
    if "amount" in out:
        out["amount"] = format_yuan(out["amount"])
    return out


def status_json(view: dict) -> dict:
    return {"uin": view["uin"], "cancelled": view["cancelled"],
            "may_cancel": not view["cancelled"] and not view["blockers"],
            "gift_forfeited_on_cancel": format_yuan(view["gift"]),
            "blockers": [blocker_json(b) for b in view["blockers"]]}


def cancellation_json(done: dict) -> dict:
    return {**done, "gift_forfeited": format_yuan(done["gift_forfeited"])}
