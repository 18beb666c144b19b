"""Streaming statement imports (RMT-2, RMT-3, RMT-8, ARR-4): any iterable of transfers
is imported a batch at a time inside the caller's one transaction — the same
outcome as the whole list at once; a refusal raised mid-stream (a parser's
StatementRefused, a conflicting line in a later batch) leaves nothing behind."""

from __future__ import annotations

from dataclasses import replace

import pytest

from feecenter.db.engine import transaction
from feecenter.errors import Conflict, InvalidInput
from feecenter.funds import service as funds
from feecenter.funds.tables import statement_entries
from feecenter.ledger.tables import ledger_transactions
from feecenter.notifications.tables import in_site_messages
from feecenter.remittances import service as remittances
from feecenter.remittances.statements import StatementRefused
from feecenter.remittances.tables import remittance_imports, remittances as remittances_table
from tests.helpers import OPS, assert_reconciled, balance, row_counts
from tests.test_remittances import SETTINGS, company, entries, line, messages, record

TABLES = (remittances_table, remittance_imports, ledger_transactions, statement_entries,
          in_site_messages)


def streamed(rt, transfers, *, batch_size: int = 3, digest: str = "stream-1"):
    with transaction(rt.engine) as conn:
        return remittances.import_transfers(conn, rt.clock, OPS, iter(transfers), source="camt053",
                                            digest=digest, settings=SETTINGS,
                                            batch_size=batch_size)


def mixed(rt):
    """Two accounts (one in arrears and advances, one without a verified entity) and
    eleven lines: credited, pending, unassigned, not ours, a line repeated 5 lines later."""
    uin, first, second = company(rt)
    other, other_first, _ = company(rt, "unverified", entity=None)
    with transaction(rt.engine) as conn:
        funds.grant_credit(conn, rt.clock, OPS, uin, credit_limit=500_00)
        revenue = funds.platform_account(conn, rt.clock, "revenue")
        funds.spend(conn, rt.clock, uin, 800_00, key="usage", postpaid=True,
                    revenue_account_id=revenue)  # credit pays 500, 300 becomes arrears
    lines = [line("S01", first, 100_00), line("S02", second, 250_00, n=2),
             line("S03", other_first, 30_00, n=3), line("S04", first[:15], 40_00, n=4),
             line("S05", "621700" + "9" * 19, 50_00, n=5), line("S06", first, 600_00, n=6),
             line("S07", first, 1_00, n=7), line("S08", other_first, 2_00, n=8),
             line("S09", second, 3_00, n=9), line("S10", first, 4_00, n=10)]
    lines.append(replace(lines[5], line=11))  # S06 again, in the next batch: a duplicate
    return uin, other, lines


@pytest.mark.spec("RMT-2", "RMT-3", "RMT-8", "ARR-4")
def test_a_generator_imported_in_batches_credits_each_line_as_the_whole_list(rt):
    uin, other, lines = mixed(rt)
    summary = streamed(rt, (t for t in lines), batch_size=3)
    assert (summary.lines, summary.credited, summary.pending, summary.unassigned,
            summary.not_ours, summary.duplicates) == (11, 6, 2, 1, 1, 1)
    assert summary.not_ours_references == ("S05",)
    assert (summary.new_fen, summary.credited_fen) == (1080_00, 958_00)
    view = balance(rt, uin)
    assert (view.arrears, view.advances, view.cash) == (0, 0, 958_00 - 800_00)
    # credited after every line was written, in record order: arrears (300) first, then
    # the advances (500), each repayment its own entry
    assert entries(rt, uin)[-10:] == [
        ("recharge", 100_00, "bank", "bank-enterprice"), ("repayment", -100_00, None, None),
        ("recharge", 250_00, "bank", "bank-enterprice"), ("repayment", -200_00, None, None),
        ("repay", -50_00, None, None), ("recharge", 600_00, "bank", "bank-enterprice"),
        ("repay", -450_00, None, None), ("recharge", 1_00, "bank", "bank-enterprice"),
        ("recharge", 3_00, "bank", "bank-enterprice"), ("recharge", 4_00, "bank", "bank-enterprice")]
    assert record(rt, "S03")["state"] == "pending_confirmation"
    assert messages(rt, other) == ["remittance_pending", "remittance_pending"]
    with rt.engine.connect() as conn:
        stored = remittances.list_imports(conn, OPS)[0]
    assert (stored["lines"], stored["credited"], stored["duplicates"]) == (11, 6, 1)
    assert_reconciled(rt)


@pytest.mark.spec("RMT-2")
def test_a_refusal_raised_mid_stream_imports_nothing(rt):
    uin, other, lines = mixed(rt)
    before = row_counts(rt, *TABLES)

    def parser_that_fails_late():
        yield from lines[:8]  # two batches written, credits not yet made
        raise StatementRefused("mt940", None, "余额不符", "the balances do not add up")

    with pytest.raises(StatementRefused):
        streamed(rt, parser_that_fails_late())
    assert row_counts(rt, *TABLES) == before
    assert balance(rt, uin).arrears == 300_00 and messages(rt, other) == []

    conflicting = [*lines[:7], replace(lines[0], amount=1)]  # S01 again, other content, batch 3
    with pytest.raises(Conflict) as refused:
        streamed(rt, conflicting)
    assert refused.value.details["bank_reference"] == "S01"
    assert row_counts(rt, *TABLES) == before

    bad = [*lines[:7], replace(lines[7], amount=0)]
    with pytest.raises(InvalidInput) as refused:
        streamed(rt, bad)
    assert (refused.value.field, refused.value.details["line"]) == ("amount", 8)
    assert row_counts(rt, *TABLES) == before
    assert_reconciled(rt)


def test_more_lines_than_an_import_takes_are_refused_while_streaming(rt, monkeypatch):
    _, first, _ = company(rt)
    before = row_counts(rt, *TABLES)
    monkeypatch.setattr(remittances, "MAX_LINES", 4)
    with pytest.raises(InvalidInput) as refused:
        streamed(rt, (line(f"M{i}", first, 1_00, n=i) for i in range(5)), batch_size=2)
    assert refused.value.field == "transfers"
    assert row_counts(rt, *TABLES) == before
    with pytest.raises(InvalidInput) as refused:
        streamed(rt, [line("M0", first)], batch_size=0)
    assert refused.value.field == "batch_size"
