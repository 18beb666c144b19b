"""notify_many (a statement import's pending lines): the in-site messages and outbox
rows notify writes one by one, idempotent by key, refusing a key used for another
account or template."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from feecenter.db.engine import transaction
from feecenter.errors import IdempotencyConflict, InvalidInput
from feecenter.notifications import service as notifications
from feecenter.notifications.tables import in_site_messages, notification_outbox
from tests.helpers import new_account, row_counts

PARAMS = {"amount": "12.34", "payer_name": "某公司", "reference": "R1", "state_zh": "待签署",
          "state_en": "pending signature"}


def written(rt, prefix: str) -> list[tuple]:
    m, o = in_site_messages.c, notification_outbox.c
    with rt.engine.connect() as conn:
        messages = conn.execute(select(m.id, m.idempotency_key, m.uin, m.template, m.title, m.body,
                                       m.params).where(m.idempotency_key.like(prefix + "%"))
                                .order_by(m.id)).all()
        return [(key[len(prefix):], *rest, conn.execute(
            select(o.channel, o.recipient, o.idempotency_key, o.subject, o.body, o.state)
            .where(o.message_id == mid).order_by(o.id)).all()) for mid, key, *rest in messages]


def test_notify_many_writes_what_notify_writes_one_by_one(rt):
    uins = [new_account(rt, f"co-{i}", email=f"f{i}@example.com", phone=f"1380000000{i}")
            for i in range(2)]
    events = [(uins[0], "a"), (uins[1], "b"), (uins[0], "c")]
    with transaction(rt.engine) as conn:
        for uin, key in events:
            notifications.notify(conn, rt.clock, uin, "remittance_pending", PARAMS, key=f"one:{key}")
        notifications.notify_many(conn, rt.clock, [
            notifications.Notice(uin, "remittance_pending", PARAMS, f"many:{key}")
            for uin, key in events])
    one, many = written(rt, "one:"), written(rt, "many:")
    assert len(one) == 3 and all(len(row[-1]) >= 2 for row in one)  # email and SMS rows
    strip = [(row[:-1], [(*r[:2], r[2].split("|", 1)[1], *r[3:]) for r in row[-1]]) for row in one]
    assert [(row[:-1], [(*r[:2], r[2].split("|", 1)[1], *r[3:]) for r in row[-1]])
            for row in many] == strip

    before = row_counts(rt, in_site_messages, notification_outbox)
    with transaction(rt.engine) as conn:  # a repeat writes nothing
        notifications.notify_many(conn, rt.clock, [
            notifications.Notice(uins[0], "remittance_pending", PARAMS, "many:a")])
    assert row_counts(rt, in_site_messages, notification_outbox) == before
    with transaction(rt.engine) as conn, pytest.raises(IdempotencyConflict):
        notifications.notify_many(conn, rt.clock, [
            notifications.Notice(uins[1], "remittance_pending", PARAMS, "many:a")])
    with transaction(rt.engine) as conn, pytest.raises(InvalidInput):
        notifications.notify_many(conn, rt.clock, [
            notifications.Notice(uins[1], "remittance_pending", PARAMS, "x"),
            notifications.Notice(uins[0], "remittance_pending", PARAMS, "x")])
