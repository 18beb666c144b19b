"""Usage intake: per-record rejection with reasons, deduplication by event ID."""

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from feecenter.accounts.permissions import SYSTEM
from feecenter.catalog import service as catalog
from feecenter.clock import business_time_text
from feecenter.errors import PermissionDenied
from feecenter.resources import postpaid
from feecenter.usage import service as usage
from feecenter.usage.tables import usage_records
from tests.helpers import OPS, add_cash, new_account


@pytest.fixture
def metered(rt):
    with rt.engine.begin() as conn:
        catalog.load_catalog(conn, rt.clock, OPS, catalog.sample_catalog_text(), "sample.yaml")
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    with rt.engine.begin() as conn:
        resource_id = postpaid.open_postpaid(conn, rt.clock, SYSTEM, uin, product="cvm",
                                             region="ap-guangzhou", spec_item="S5.MEDIUM4")
    rt.clock.advance(hours=3)
    return rt, uin, resource_id


def record(uin, resource_id, event, hours_ago=2, quantity="1", item="S5.MEDIUM4", clock=None):
    end = clock.now() - timedelta(hours=hours_ago - 1)
    return {"event_id": event, "uin": uin, "resource_id": resource_id, "billing_item": item,
            "quantity": quantity, "usage_start": business_time_text(end - timedelta(hours=1)),
            "usage_end": business_time_text(end)}


def jsonl(records):
    return "\n".join(json.dumps(r) for r in records)


def stored(rt):
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(usage_records)).scalar_one()


def test_valid_records_are_kept_and_a_resent_batch_adds_nothing(metered):
    rt, uin, rid = metered
    batch = jsonl([record(uin, rid, f"e{i}", clock=rt.clock, quantity="1.5") for i in range(3)])
    first = usage.ingest(rt.engine, rt.clock, OPS, batch)
    assert (first.accepted, first.duplicates, first.rejected) == (3, 0, 0)
    again = usage.ingest(rt.engine, rt.clock, OPS, batch)
    assert (again.accepted, again.duplicates, again.rejected) == (0, 3, 0)
    assert stored(rt) == 3
    with rt.engine.connect() as conn:
        assert conn.execute(select(usage_records.c.quantity)).scalars().all() == [1_500_000] * 3


def test_each_bad_record_is_rejected_with_its_reason_the_rest_kept(metered):
    rt, uin, rid = metered
    good = record(uin, rid, "good", clock=rt.clock)
    bad = [
        ({**record(uin, "cvm-unknown", "r1", clock=rt.clock)}, "resource_id"),
        ({**record(uin, rid, "r2", clock=rt.clock), "quantity": "-1"}, "quantity"),
        ({**record(uin, rid, "r3", clock=rt.clock), "usage_end": good["usage_start"],
          "usage_start": good["usage_end"]}, "usage_end"),
        (record(uin, rid, "r4", hours_ago=-5, clock=rt.clock), "usage_end"),  # the future
        (record(uin, rid, "r5", item="gpu", clock=rt.clock), "billing_item"),
        (record(uin + 1, rid, "r6", clock=rt.clock), "resource_id"),  # someone else's
        ({**record(uin, rid, "r7", clock=rt.clock), "quantity": "1.1234567"}, "quantity"),
        ({k: v for k, v in record(uin, rid, "r8", clock=rt.clock).items() if k != "uin"}, "uin"),
    ]
    text = jsonl([good] + [b for b, _ in bad]) + "\n{not json"
    result = usage.ingest(rt.engine, rt.clock, OPS, text)
    assert result.accepted == 1 and result.rejected == len(bad) + 1
    assert [r.field for r in result.rejections] == [f for _, f in bad] + ["record"]
    assert all(r.reason_zh and r.reason_en for r in result.rejections)
    assert result.rejections[0].line == 2
    assert stored(rt) == 1


def test_duplicate_event_with_different_content_is_rejected(metered):
    rt, uin, rid = metered
    usage.ingest(rt.engine, rt.clock, OPS, jsonl([record(uin, rid, "dup", clock=rt.clock)]))
    changed = {**record(uin, rid, "dup", clock=rt.clock), "quantity": "2"}
    result = usage.ingest(rt.engine, rt.clock, OPS, jsonl([changed, changed]))
    assert result.rejected == 2 and result.rejections[0].field == "event_id"
    with rt.engine.connect() as conn:
        assert conn.execute(select(usage_records.c.quantity)).scalar_one() == 1_000_000


def test_usage_of_a_released_resource_is_rejected(metered):
    rt, uin, rid = metered
    with rt.engine.begin() as conn:
        postpaid.release_postpaid(conn, rt.clock, SYSTEM, uin, rid)
    rt.clock.advance(hours=2)
    after = record(uin, rid, "late", hours_ago=1, clock=rt.clock)
    before = record(uin, rid, "before", hours_ago=3, clock=rt.clock)
    result = usage.ingest(rt.engine, rt.clock, OPS, jsonl([after, before]))
    assert result.accepted == 1 and result.rejections[0].event_id == "late"


def test_csv_files_and_bad_headers(metered):
    rt, uin, rid = metered
    rows = [record(uin, rid, f"c{i}", clock=rt.clock) for i in range(2)]
    header = ",".join(rows[0])
    text = header + "\n" + "\n".join(",".join(str(r[k]) for k in rows[0]) for r in rows)
    result = usage.ingest(rt.engine, rt.clock, OPS, text, fmt="csv")
    assert (result.accepted, result.rejected) == (2, 0)
    broken = usage.ingest(rt.engine, rt.clock, OPS, "event_id,uin\nx,1", fmt="csv")
    assert broken.rejected == 1 and broken.rejections[0].field == "resource_id"


def test_only_operators_report_usage(metered):
    rt, uin, rid = metered
    from feecenter.accounts.permissions import Actor

    owner = Actor("user", "owner", uin=uin, user_id=1, role="owner")
    with pytest.raises(PermissionDenied):
        usage.ingest(rt.engine, rt.clock, owner, jsonl([record(uin, rid, "x", clock=rt.clock)]))
