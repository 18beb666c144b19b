"""Usage intake: per-record rejection with reasons, deduplication by event ID."""

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from feecenter.accounts.permissions import SYSTEM
from feecenter.catalog import service as catalog
from feecenter.clock import business_time_text
from feecenter.errors import InvalidInput, PermissionDenied
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


# ---------------------------------------------------------------- files and chunks


def csv_text(records, header=None):
    header = header or list(records[0])
    return "\n".join([",".join(header)] + [",".join(str(r.get(k, "")) for k in header)
                                            for r in records]) + "\n"


def test_a_record_is_judged_against_what_was_stored_before_it_whatever_the_chunks(metered,
                                                                                  monkeypatch):
    rt, uin, rid = metered
    monkeypatch.setattr(usage, "CHUNK", 2)
    usage.ingest(rt.engine, rt.clock, OPS, jsonl([record(uin, rid, "x", clock=rt.clock)]))
    x2 = {**record(uin, rid, "x", clock=rt.clock), "quantity": "2"}
    bad_y = {**record(uin, rid, "y", clock=rt.clock), "billing_item": "gpu"}
    y = record(uin, rid, "y", clock=rt.clock, quantity="3")
    z = record(uin, rid, "z", clock=rt.clock)
    z_other = {**z, "quantity": "9"}
    batch = [x2, record(uin, rid, "x", clock=rt.clock), bad_y, y, z, z, z_other, y]
    result = usage.ingest(rt.engine, rt.clock, OPS, jsonl(batch))
    # x: stored with quantity 1 -> the changed one refused, the same one a duplicate;
    # y: its first record is refused, so the valid one after it is stored;
    # z: stored once, repeated (duplicate), then changed (refused) across chunk edges.
    assert (result.accepted, result.duplicates, result.rejected) == (2, 3, 3)
    assert [(r.line, r.event_id, r.field) for r in result.rejections] == [
        (1, "x", "event_id"), (3, "y", "billing_item"), (7, "z", "event_id")]
    with rt.engine.connect() as conn:
        stored_rows = dict(conn.execute(select(usage_records.c.event_id,
                                               usage_records.c.quantity)).all())
    assert stored_rows == {"x": 1_000_000, "y": 3_000_000, "z": 1_000_000}


@pytest.mark.spec("SET-9")
def test_received_at_is_the_clock_at_intake(metered, monkeypatch):
    """The late-usage pass finds what arrived since its last run by received_at."""
    rt, uin, rid = metered
    monkeypatch.setattr(usage, "CHUNK", 1)
    usage.ingest(rt.engine, rt.clock, OPS, jsonl([record(uin, rid, "a", clock=rt.clock)]))
    rt.clock.advance(minutes=5)
    usage.ingest(rt.engine, rt.clock, OPS, jsonl([record(uin, rid, "b", clock=rt.clock)]))
    with rt.engine.connect() as conn:
        received = dict(conn.execute(select(usage_records.c.event_id,
                                            usage_records.c.received_at)).all())
    now = rt.clock.now().replace(tzinfo=None)
    assert received == {"a": now - timedelta(minutes=5), "b": now}


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_file_is_imported_in_chunks(metered, tmp_path, fmt, monkeypatch):
    rt, uin, rid = metered
    monkeypatch.setattr(usage, "CHUNK", 3)
    good = [record(uin, rid, f"f{i}", clock=rt.clock, quantity=f"{i}.25") for i in range(7)]
    bad = {**record(uin, rid, "bad", clock=rt.clock), "usage_start": "yesterday"}
    rows = good[:4] + [bad] + good[4:]
    path = tmp_path / f"usage.{fmt}"
    path.write_text("\ufeff" + (csv_text(rows) if fmt == "csv" else jsonl(rows) + "\n\n"),
                    encoding="utf-8")
    result = usage.ingest_file(rt.engine, rt.clock, OPS, path)
    assert (result.accepted, result.duplicates, result.rejected) == (7, 0, 1)
    line = 6 if fmt == "csv" else 5  # the CSV header is line 1
    assert [(r.line, r.event_id, r.field) for r in result.rejections] == [
        (line, "bad", "usage_start")]
    again = usage.ingest_file(rt.engine, rt.clock, OPS, path)
    assert (again.accepted, again.duplicates, again.rejected) == (0, 7, 1)
    with rt.engine.connect() as conn:
        assert sorted(conn.execute(select(usage_records.c.quantity)).scalars()) == [
            i * 1_000_000 + 250_000 for i in range(7)]


def test_a_failed_write_stops_the_import_after_the_chunks_before_it(metered, monkeypatch):
    """On PostgreSQL a writer thread stores chunk N while chunk N+1 is parsed: a
    failure in the writer still stops the import there, with the chunks before
    it stored whole and nothing after it."""
    rt, uin, rid = metered
    monkeypatch.setattr(usage, "CHUNK", 2)
    real_insert, calls = usage.store.insert_new, []

    def failing_second(conn, rows):
        calls.append(len(rows))
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real_insert(conn, rows)

    monkeypatch.setattr(usage.store, "insert_new", failing_second)
    batch = [record(uin, rid, f"c{i}", clock=rt.clock) for i in range(6)]
    with pytest.raises(RuntimeError, match="disk full"):
        usage.ingest(rt.engine, rt.clock, OPS, jsonl(batch))
    assert calls == [2, 2]  # the third chunk was never written
    with rt.engine.connect() as conn:
        assert sorted(conn.execute(select(usage_records.c.event_id)).scalars()) == ["c0", "c1"]


def test_a_file_that_is_not_utf8_is_refused_naming_the_file(metered, tmp_path):
    rt, uin, rid = metered
    path = tmp_path / "usage.csv"
    path.write_bytes(csv_text([record(uin, rid, "u", clock=rt.clock)]).encode() + b"\xff\xfe\n")
    with pytest.raises(InvalidInput) as refused:
        usage.ingest_file(rt.engine, rt.clock, OPS, path)
    assert refused.value.field == "file" and refused.value.message_zh
    assert stored(rt) == 0  # the bad bytes are in the first block read


def test_csv_quoted_fields_header_order_and_short_rows(metered):
    rt, uin, rid = metered
    good = record(uin, rid, "q1", clock=rt.clock)
    header = ["usage_end", "note", "event_id", "uin", "resource_id", "billing_item", "quantity",
              "usage_start"]
    text = (",".join(header) + "\r\n"
            + f'{good["usage_end"]},"two\r\nlines, and ""quotes""",q1,{uin},{rid},S5.MEDIUM4,'
              f'"1.5",{good["usage_start"]}\r\n'
            + "\r\n"
            + f"{good['usage_end']},short,q2,{uin}\r\n"
            + f'{good["usage_end"]},"never closed,q3\r\n')
    result = usage.ingest(rt.engine, rt.clock, OPS, text, fmt="csv")
    assert result.accepted == 1
    assert [(r.line, r.event_id, r.field) for r in result.rejections] == [
        (5, "q2", "resource_id"), (6, None, "event_id")]  # the open quote ate the rest
    with rt.engine.connect() as conn:
        assert conn.execute(select(usage_records.c.quantity)).scalar_one() == 1_500_000


def test_json_values_must_be_strings_or_integers_and_event_ids_printable(metered):
    rt, uin, rid = metered
    ok = {**record(uin, rid, "j1", clock=rt.clock), "quantity": 2}
    cases = [({**record(uin, rid, "j2", clock=rt.clock), "quantity": 1.5}, "quantity"),
             ({**record(uin, rid, "j3", clock=rt.clock), "quantity": True}, "quantity"),
             ({**record(uin, rid, "j4", clock=rt.clock), "resource_id": [rid]}, "resource_id"),
             ({**record(uin, rid, "j5\x00", clock=rt.clock)}, "event_id"),
             ({**record(uin, rid, "j6", clock=rt.clock),
               "usage_start": "0001-01-01T00:00:00+08:00"}, "usage_start")]
    result = usage.ingest(rt.engine, rt.clock, OPS, jsonl([ok] + [c for c, _ in cases] + [[1]]))
    assert result.accepted == 1
    assert [r.field for r in result.rejections] == [f for _, f in cases] + ["record"]
    with rt.engine.connect() as conn:
        assert conn.execute(select(usage_records.c.quantity)).scalar_one() == 2_000_000


def test_cli_imports_a_file_and_lists_the_rejections(metered, cli, tmp_path):
    rt, uin, rid = metered
    rows = [record(uin, rid, "cli1", clock=rt.clock),
            {**record(uin, rid, "cli2", clock=rt.clock), "quantity": "-3"}]
    path = tmp_path / "usage.csv"
    path.write_text(csv_text(rows), encoding="utf-8")
    code, body = cli.json("usage", "import", path, ok=False)
    assert code == 1 and (body["accepted"], body["rejected"]) == (1, 1)
    assert body["rejections"][0]["field"] == "quantity" and body["rejections"][0]["line"] == 3
    assert stored(rt) == 1


def test_http_endpoint_takes_json_lines_and_csv_bodies(live_server):
    import time
    import urllib.request

    from feecenter.auth import service as auth
    from feecenter.auth import tc3
    from tests.helpers import load_sample_catalog

    rt, address = live_server
    load_sample_catalog(rt)
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    with rt.engine.begin() as conn:
        rid = postpaid.open_postpaid(conn, rt.clock, SYSTEM, uin, product="cvm",
                                     region="ap-guangzhou", spec_item="S5.MEDIUM4")
        _, key = auth.create_operator(conn, rt.clock, OPS, "ops-usage")
    opened = rt.clock.now()
    time.sleep(0.01)  # the records end between the opening and now (the live server's clock)

    def one(event, quantity="1"):
        return {"event_id": event, "uin": uin, "resource_id": rid, "billing_item": "S5.MEDIUM4",
                "quantity": quantity, "usage_start": opened.isoformat(),
                "usage_end": (opened + timedelta(milliseconds=5)).isoformat()}

    def post(body: str, fmt: str) -> dict:
        data = body.encode()
        headers = tc3.sign(key.secret_id, key.secret_key, method="POST", host=address,
                           path="/api/v1/ops/usage", query=f"format={fmt}", body=data,
                           content_type="text/plain", timestamp=int(time.time()))
        request = urllib.request.Request(f"http://{address}/api/v1/ops/usage?format={fmt}",
                                         data=data, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    first = post(jsonl([one("h1"), one("h2", "-1")]), "jsonl")
    assert (first["accepted"], first["rejected"]) == (1, 1)
    assert first["rejections"][0]["field"] == "quantity" and first["rejections"][0]["reason_en"]
    time.sleep(1)  # a new signature timestamp: the same one twice is a replay
    second = post(csv_text([one("h1"), one("h3")]), "csv")
    assert (second["accepted"], second["duplicates"], second["rejected"]) == (1, 1, 0)
    assert stored(rt) == 2


def test_importers_sending_the_same_events_at_once_store_each_once(metered, monkeypatch):
    """On PostgreSQL the second COPY waits for the first, meets its events, rolls back
    to its savepoint and judges them as stored; on SQLite the writers take turns."""
    from tests.helpers import run_threads

    rt, uin, rid = metered
    monkeypatch.setattr(usage, "CHUNK", 50)
    batch = jsonl([record(uin, rid, f"c{i}", clock=rt.clock) for i in range(200)])
    results = []
    assert run_threads(3, lambda _: results.append(
        usage.ingest(rt.engine, rt.clock, OPS, batch))) == []
    assert sum(r.accepted for r in results) == 200 and stored(rt) == 200
    assert sum(r.duplicates for r in results) == 400 and not any(r.rejected for r in results)
