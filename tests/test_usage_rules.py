"""Usage intake's pure parts, without a database: readers, record parsing, rules."""

import csv
import io
import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from feecenter.usage import parse, rules
from feecenter.usage.parse import FIELDS, RecordError, RecordParser, chunks, utc_text
from feecenter.usage.rules import ResourceFacts

GOOD = ("e1", "100", "cvm-1", "S5", "1.5", "2026-03-02 10:00:00", "2026-03-02 11:00:00")
NOW = "2026-03-02 12:00:00.000000"
FACTS = {"cvm-1": ResourceFacts(uin=100, postpaid=True, created="2026-03-01 00:00:00.000000",
                                released=None, product_code="cvm", items=frozenset({"S5"}))}


def test_a_record_becomes_a_tuple_with_utc_text_times_and_micro_units():
    assert RecordParser().parse(GOOD) == (
        "e1", 100, "cvm-1", "S5", 1_500_000, "2026-03-02 02:00:00.000000",
        "2026-03-02 03:00:00.000000", 0)
    with_offset = GOOD[:5] + ("2026-03-02T02:00:00.25+00:00", "2026-03-02T03:00:00Z")
    assert RecordParser().parse(with_offset)[5:7] == ("2026-03-02 02:00:00.250000",
                                                      "2026-03-02 03:00:00.000000")


@pytest.mark.parametrize("index, value, field", [
    (0, "", "event_id"), (0, "x" * 101, "event_id"), (0, "a\tb", "event_id"),
    (1, "12a", "uin"), (4, "-1", "quantity"), (4, "1.1234567", "quantity"),
    (4, "1" * 13, "quantity"), (5, "soon", "usage_start"), (6, "2026-03-02 10:00:00", "usage_end"),
    (6, None, "usage_end"), (5, "0001-01-01T00:00:00+08:00", "usage_start")])
def test_each_bad_field_is_named_in_both_languages(index, value, field):
    values = list(GOOD)
    values[index] = value
    with pytest.raises(RecordError) as refused:
        RecordParser().parse(values)
    assert refused.value.field == field and refused.value.zh and refused.value.en


def test_the_memos_stay_bounded(monkeypatch):
    monkeypatch.setattr(parse, "MEMO_LIMIT", 10)
    parser = RecordParser()
    for hour in range(30):
        parser.parse(GOOD[:5] + (f"2026-03-02 {hour % 24:02d}:00:00", "2026-03-03 01:00:00"))
    assert 0 < len(parser._times) <= 10


def test_utc_text_is_fixed_width_so_text_order_is_time_order():
    from datetime import datetime

    early, late = datetime(999, 1, 1), datetime(2026, 1, 1, 0, 0, 0, 5)
    assert utc_text(early) == "0999-01-01 00:00:00.000000" and utc_text(early) < utc_text(late)


def reference(text: str) -> list[tuple]:
    """What the csv module and one-by-one parsing make of a CSV text: (line, record or
    the refused field)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header, parser, out, line = next(reader), RecordParser(), [], 2
    for row in reader:
        if row:
            values = [row[header.index(f)] if header.index(f) < len(row) else None
                      for f in FIELDS]
            try:
                out.append((line, parser.parse(values)))
            except RecordError as exc:
                out.append((line, exc.field))
        line = reader.line_num + 1
    return out


def ours(text: str, size: int) -> list[tuple]:
    out = []
    for chunk in chunks(io.StringIO(text, newline=""), "csv", size):
        out += list(zip(chunk.lines, chunk.records)) + [(r.line, r.field) for r in chunk.rejections]
    return sorted(out, key=lambda item: item[0])


values = {
    "event_id": st.sampled_from(["e1", "e2", " e3 ", "", "a,b", 'q"t', "x" * 101]),
    "uin": st.sampled_from(["100", "1x", "", " 7 "]),
    "resource_id": st.sampled_from(["cvm-1", "r,2", "line\nbreak"]),
    "billing_item": st.sampled_from(["S5", "S5 "]),
    "quantity": st.sampled_from(["1", "0.5", "-1", "1.1234567", "", "2,5"]),
    "usage_start": st.sampled_from(["2026-03-02 10:00:00", "2026-03-02T01:00:00Z", "soon"]),
    "usage_end": st.sampled_from(["2026-03-02 11:00:00", "2026-03-02 09:00:00"]),
}
records = st.fixed_dictionaries(values).map(lambda r: [r[f] for f in FIELDS])


@given(st.lists(records | st.just([]), min_size=1, max_size=12), st.integers(1, 5),
       st.sampled_from(["\n", "\r\n"]))
def test_reading_a_csv_in_blocks_gives_what_the_csv_module_and_one_by_one_parsing_give(
        rows, size, newline):
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator=newline)
    writer.writerow(FIELDS)
    writer.writerows(rows)
    assert ours(out.getvalue(), size) == reference(out.getvalue())


def test_a_quoted_field_may_span_lines_and_line_numbers_follow_the_file():
    header = ["resource_id"] + [f for f in FIELDS if f != "resource_id"]
    rest = ",".join(v for f, v in zip(FIELDS, GOOD) if f != "resource_id")
    text = ",".join(header) + f'\n"a\nb",{rest}\n\nc,{rest}\n'
    [chunk] = chunks(io.StringIO(text, newline=""), "csv", 10)
    assert [(line, record[2]) for line, record in zip(chunk.lines, chunk.records)] == [
        (2, "a\nb"), (5, "c")]


def test_json_lines_numbers_and_types():
    good = dict(zip(FIELDS, GOOD))
    lines = [json.dumps(good), "", json.dumps({**good, "event_id": "n", "uin": 100}), "[]", "{",
             json.dumps({**good, "event_id": "f", "quantity": 1.5})]
    [chunk] = chunks(io.StringIO("\n".join(lines), newline=""), "jsonl", 10)
    assert chunk.lines == [1, 3] and chunk.records[1][:2] == ("n", 100)
    assert [(r.line, r.event_id, r.field) for r in chunk.rejections] == [
        (4, None, "record"), (5, None, "record"), (6, "f", "quantity")]


json_values = st.sampled_from([None, "", " 1 ", "0", "1.5", "e\u0000", "\ud800", "x", "cvm-1",
                               "2026-03-02 10:00:00", -1, 0, 7, 2**65, True, 1.5, [1], {}])
json_objects = st.dictionaries(st.sampled_from(FIELDS + ("extra",)), json_values | st.just(...),
                               max_size=3).map(  # a good record with up to 3 changes (... drops)
    lambda changes: {k: v for k, v in {**dict(zip(FIELDS, GOOD)), **changes}.items() if v != ...})


@given(st.lists(json_objects | st.just([]), max_size=4))
@example([{**dict(zip(FIELDS, GOOD)), "uin": 0}, {**dict(zip(FIELDS, GOOD)), "quantity": 0}])
def test_the_fast_json_decoder_reads_what_the_json_module_reads(objects):
    text = "\n".join(json.dumps(o) for o in objects)
    [fast] = list(chunks(io.StringIO(text, newline=""), "jsonl", 10)) or [parse.Chunk()]
    slow, parser = parse.Chunk(), RecordParser()
    for number, line in enumerate(io.StringIO(text, newline=""), start=1):
        parse._add_json_line(slow, number, line, parser.parse)
    assert fast == slow


def test_check_names_the_first_problem_of_a_record():
    parser = RecordParser()
    good = parser.parse(GOOD)
    created, items = "2026-03-01 00:00:00.000000", frozenset({"S5"})
    facts = {**FACTS,
             "cvm-2": ResourceFacts(100, True, created, "2026-03-02 02:30:00.000000", "cvm", items),
             "cvm-3": ResourceFacts(100, False, created, None, "cvm", items)}

    def with_(**changes):
        values = dict(zip(FIELDS, GOOD))
        values.update(changes)
        return parser.parse([values[f] for f in FIELDS])

    records = [good, with_(resource_id="nope"), with_(uin="101"), with_(resource_id="cvm-3"),
               with_(resource_id="cvm-2"), with_(usage_start="2026-02-28 00:00:00"),
               with_(usage_end="2026-03-02 21:00:00"), with_(billing_item="GPU")]
    rows, lines, refused = rules.check(records, list(range(1, 9)), facts, NOW)
    assert rows == [good + (NOW, 0)] and lines == [1]  # nothing stopped
    assert [r.field for r in refused] == ["resource_id", "resource_id", "resource_id",
                                          "resource_id", "usage_start", "usage_end",
                                          "billing_item"]
    assert [r.line for r in refused] == list(range(2, 9))


def test_dedupe_keeps_each_events_first_row():
    # rows as check makes them: (..., revision, received_at, stopped quantity)
    a, b = ("a", 1, "r", "i", 1, "s", "e", 0, NOW, 0), ("b", 1, "r", "i", 1, "s", "e", 0, NOW, 0)
    changed_a = ("a", 1, "r", "i", 2, "s", "e", 0, NOW, 0)
    new, corrected, duplicates, refused = rules.dedupe([a, a, changed_a, b], [1, 2, 3, 4], {})
    assert (new, corrected, duplicates, [r.line for r in refused]) == ([a, b], [], 1, [3])
    new, corrected, duplicates, refused = rules.dedupe([changed_a, b], [1, 2], {"a": a[:8]})
    assert (new, corrected, duplicates, [r.field for r in refused]) == ([b], [], 0, ["event_id"])


@pytest.mark.spec("SET-9")
def test_a_higher_revision_corrects_the_quantity_a_lower_one_changes_nothing():
    stored = ("a", 1, "r", "i", 5, "s", "e", 1)
    up = ("a", 1, "r", "i", 7, "s", "e", 2, NOW, 0)
    again = ("a", 1, "r", "i", 9, "s", "e", 3, NOW, 4)  # carries its own stopped part (ARR-3)
    old = ("a", 1, "r", "i", 4, "s", "e", 0, NOW, 0)
    new, corrected, duplicates, refused = rules.dedupe([up, old, up, again], [1, 2, 3, 4],
                                                       {"a": stored})
    assert (new, corrected, duplicates, refused) == ([], [again], 2, [])
    other_resource = ("a", 1, "r2", "i", 7, "s", "e", 2, NOW, 0)
    _, corrected, _, refused = rules.dedupe([other_resource], [1], {"a": stored})
    assert corrected == [] and [r.field for r in refused] == ["event_id"]
    fresh = ("c", 1, "r", "i", 1, "s", "e", 0, NOW, 0)
    fixed = ("c", 1, "r", "i", 2, "s", "e", 1, NOW, 1)
    assert rules.dedupe([fresh, fixed], [1, 2], {})[:3] == ([fixed], [], 0)


@pytest.mark.parametrize("revision, expected", [(None, 0), ("", 0), (" 3 ", 3), (2, 2)])
def test_the_revision_is_optional(revision, expected):
    assert RecordParser().parse(GOOD + (revision,))[7] == expected


@pytest.mark.parametrize("revision", ["-1", "1.5", "x", "２", str(2**31), -1])
def test_a_bad_revision_is_named(revision):
    with pytest.raises(RecordError) as refused:
        RecordParser().parse(GOOD + (revision,))
    assert refused.value.field == "revision" and refused.value.zh and refused.value.en


def test_csv_and_json_lines_carry_the_revision():
    header = ",".join(FIELDS) + ",revision\n"
    [chunk] = chunks(io.StringIO(header + ",".join(GOOD) + ",2\n"), "csv", 10)
    assert chunk.records[0][7] == 2
    line = json.dumps({**dict(zip(FIELDS, GOOD)), "revision": 4})
    [chunk] = chunks(io.StringIO(line + "\n"), "jsonl", 10)
    assert chunk.records[0][7] == 4



# ---------------------------------------------------------------- ARR-3: usage while stopped

def _t(hh_mm: str) -> str:
    return f"2026-03-02 {hh_mm}:00.000000"


@pytest.mark.spec("ARR-3")
def test_usage_while_stopped_is_pro_rated_by_time_half_up():
    one = 1_000_000  # one instance-hour
    stopped = [(_t("12:00"), _t("14:20"))]
    part = rules.stopped_part
    assert part(one, _t("11:00"), _t("12:00"), stopped) == 0          # ends at the stop
    assert part(one, _t("12:00"), _t("13:00"), stopped) == one        # wholly stopped
    assert part(one, _t("11:30"), _t("12:30"), stopped) == one // 2   # stop inside the record
    assert part(one, _t("14:00"), _t("15:00"), stopped) == 333_333    # restore at 14:20: 20 min
    assert part(one, _t("14:20"), _t("15:00"), stopped) == 0          # starts at the restore
    assert part(2, _t("11:00"), _t("12:30"), stopped) == 1            # 2/3 rounds up to 1
    assert part(1, _t("11:30"), _t("12:30"), stopped) == 1            # a half rounds up
    still = [(_t("12:00"), None)]                                      # not restarted yet
    assert part(one, _t("15:00"), _t("16:00"), still) == one
    two = [(_t("10:00"), _t("10:15")), (_t("10:45"), None)]           # stopped twice
    assert part(one, _t("10:00"), _t("11:00"), two) == one // 2


@pytest.mark.spec("ARR-3")
def test_check_records_the_stopped_part_of_each_kept_record():
    parser = RecordParser()
    created, items = "2026-03-01 00:00:00.000000", frozenset({"S5"})
    facts = {"cvm-1": ResourceFacts(100, True, created, None, "cvm", items,
                                    stops=((_t("10:30"), None),))}
    record = parser.parse(GOOD)  # 10:00-11:00 Shanghai = 02:00-03:00 UTC; stopped from 10:30 UTC
    later = parser.parse(("e2",) + GOOD[1:5] + ("2026-03-02 18:30:00", "2026-03-02 19:00:00"))
    rows, _, refused = rules.check([record, later], [1, 2], facts, NOW)
    assert refused == []
    # before the stop; wholly after it
    assert [row[rules.STOPPED] for row in rows] == [0, 1_500_000]
