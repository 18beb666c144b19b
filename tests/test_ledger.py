"""The double-entry ledger core, on SQLite and PostgreSQL.

Every test drives feecenter.ledger.service directly: balanced transfers,
idempotency, bounds, batches, two-phase holds, reversals and reconciliation.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text, update

from feecenter.errors import (Conflict, IdempotencyConflict, InsufficientBalance, InvalidInput,
                              LedgerInvariantBroken, NotFound)
from feecenter.ledger import service as ledger
from feecenter.ledger.reconcile import reconcile
from feecenter.ledger.service import HoldLeg, Posting, Transfer
from feecenter.ledger.tables import (ledger_accounts, ledger_hold_legs, ledger_holds,
                                     ledger_postings, ledger_transactions)

TABLES = (ledger_accounts, ledger_transactions, ledger_postings, ledger_holds, ledger_hold_legs)


@pytest.fixture
def accts(rt):
    """Two bounded customer accounts (no overdraw), an escrow, an unbounded and a platform one."""
    with rt.engine.begin() as conn:
        ids = {
            "alice": ledger.open_account(conn, rt.clock, "t:alice:cash", "cash", uin=1,
                                         min_balance=0),
            "bob": ledger.open_account(conn, rt.clock, "t:bob:cash", "cash", uin=2,
                                       min_balance=0),
            "escrow": ledger.open_account(conn, rt.clock, "t:alice:frozen", "frozen_cash", uin=1,
                                          min_balance=0),
            "free": ledger.open_account(conn, rt.clock, "t:free", "misc"),
            "bank": ledger.open_account(conn, rt.clock, "platform:bank", "bank", cached=False),
            "revenue": ledger.open_account(conn, rt.clock, "platform:revenue", "revenue",
                                           cached=False),
        }
        ledger.transfer(conn, rt.clock, _tx("fund-alice", (ids["bank"], -10_000),
                                            (ids["alice"], 10_000), uin=1))
    return ids


def _tx(key, *legs, kind="test", uin=None, reference=None):
    return Transfer(idempotency_key=key, postings=tuple(Posting(a, amt) for a, amt in legs),
                    kind=kind, uin=uin, reference=reference)


def _balances(rt, ids) -> dict[str, int]:
    with rt.engine.connect() as conn:
        return {name: ledger.balance_of(conn, i) for name, i in ids.items()}


def _counts(rt) -> dict[str, int]:
    with rt.engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in TABLES}


def _clean(rt, **kw) -> bool:
    with rt.engine.connect() as conn:
        return reconcile(conn, **kw) == []


def _refused(rt, error, call):
    """Run ``call(conn)`` in a unit of work; it must raise ``error`` and write nothing."""
    before = _counts(rt)
    with rt.engine.connect() as conn:
        balances = dict(conn.execute(select(ledger_accounts.c.id, ledger_accounts.c.balance)).all())
    with pytest.raises(error) as info:
        with rt.engine.begin() as conn:
            call(conn)
    assert _counts(rt) == before
    with rt.engine.connect() as conn:
        assert dict(conn.execute(select(ledger_accounts.c.id, ledger_accounts.c.balance)).all()) \
            == balances
    return info.value


# ---------------------------------------------------------------- transfers

def test_balanced_transfer_moves_money_and_records_postings(rt, accts):
    with rt.engine.begin() as conn:
        result = ledger.transfer(conn, rt.clock, _tx("pay-1", (accts["alice"], -2_500),
                                                     (accts["revenue"], 2_500), uin=1,
                                                     kind="deduct", reference="order:9"))
    assert result.created
    assert result.balances_after == {accts["alice"]: 7_500}  # uncached revenue: no row
    bal = _balances(rt, accts)
    assert bal["alice"] == 7_500 and bal["revenue"] == 2_500 and bal["bank"] == -10_000
    with rt.engine.connect() as conn:
        txn = conn.execute(select(ledger_transactions)
                           .where(ledger_transactions.c.id == result.txn_id)).one()
        legs = conn.execute(select(ledger_postings.c.account_id, ledger_postings.c.amount,
                                   ledger_postings.c.balance_after, ledger_postings.c.uin)
                            .where(ledger_postings.c.txn_id == result.txn_id)
                            .order_by(ledger_postings.c.amount)).all()
    assert (txn.kind, txn.uin, txn.reference, txn.idempotency_key) == ("deduct", 1, "order:9",
                                                                      "pay-1")
    assert [tuple(row) for row in legs] == [(accts["alice"], -2_500, 7_500, 1),
                                            (accts["revenue"], 2_500, None, None)]
    assert _clean(rt)


def test_multi_leg_transfer(rt, accts):
    with rt.engine.begin() as conn:
        ledger.transfer(conn, rt.clock, _tx("split", (accts["alice"], -3_000),
                                            (accts["bob"], 1_000), (accts["free"], 500),
                                            (accts["revenue"], 1_500)))
    bal = _balances(rt, accts)
    assert (bal["alice"], bal["bob"], bal["free"], bal["revenue"]) == (7_000, 1_000, 500, 1_500)
    assert sum(bal.values()) == 0  # the whole ledger always sums to zero
    assert _clean(rt)


# (cases are looped, not parametrized: each PostgreSQL database costs ~0.4 s to make)
BAD_LEGS = [
    [("alice", -100), ("bob", 99)],  # does not sum to zero
    [("alice", -100), ("revenue", 101)],  # nor with an uncached account
    [("alice", -100)],  # one leg
    [("alice", 0), ("bob", 0)],  # zero legs
    [("alice", -100), ("alice", 100)],  # same account twice
    [("alice", -1), ("bob", True)],  # a bool is no amount, though True == 1
    [("alice", -100), ("bob", 100.0)],  # nor a float
    [("alice", -100), ("bob", 100), ("free", 1), ("revenue", -1)] * 17,  # too many legs
]


def test_unbalanced_or_malformed_transfer_is_refused_with_nothing_written(rt, accts):
    for i, legs in enumerate(BAD_LEGS):
        spec = _tx(f"bad-{i}", *[(accts[name], amount) for name, amount in legs])
        _refused(rt, LedgerInvariantBroken, lambda conn: ledger.transfer(conn, rt.clock, spec))
    assert _balances(rt, accts)["alice"] == 10_000
    assert _clean(rt)


def test_bad_idempotency_key_is_refused(rt, accts):
    for key in ("", "k" * 201):
        spec = _tx(key, (accts["alice"], -1), (accts["bob"], 1))
        error = _refused(rt, InvalidInput, lambda conn: ledger.transfer(conn, rt.clock, spec))
        assert error.field == "idempotency_key"
    with rt.engine.begin() as conn:  # 200 characters is fine
        assert ledger.transfer(conn, rt.clock, _tx("k" * 200, (accts["alice"], -1),
                                                   (accts["bob"], 1))).created


def test_unknown_account_is_refused_with_nothing_written(rt, accts):
    spec = _tx("ghost", (accts["alice"], -1), (999_999, 1))
    _refused(rt, NotFound, lambda conn: ledger.transfer(conn, rt.clock, spec))


# ---------------------------------------------------------------- idempotency

def test_idempotent_repeat_returns_first_txn_and_writes_nothing(rt, accts):
    spec = _tx("pay-once", (accts["alice"], -1_000), (accts["revenue"], 1_000), uin=1)
    with rt.engine.begin() as conn:
        first = ledger.transfer(conn, rt.clock, spec)
    before, balances = _counts(rt), _balances(rt, accts)
    for _ in range(3):
        with rt.engine.begin() as conn:
            again = ledger.transfer(conn, rt.clock, spec)
        assert (again.txn_id, again.created) == (first.txn_id, False)
    # legs in another order are the same request
    reordered = _tx("pay-once", (accts["revenue"], 1_000), (accts["alice"], -1_000), uin=1)
    with rt.engine.begin() as conn:
        assert ledger.transfer(conn, rt.clock, reordered).txn_id == first.txn_id
    assert _counts(rt) == before
    assert _balances(rt, accts) == balances
    assert balances["alice"] == 9_000


def test_same_key_different_content_is_a_conflict(rt, accts):
    base = dict(legs=[(accts["alice"], -1_000), (accts["revenue"], 1_000)], kind="deduct",
                uin=1, reference="order:1")
    with rt.engine.begin() as conn:
        ledger.transfer(conn, rt.clock, _tx("k1", *base["legs"], kind=base["kind"],
                                            uin=base["uin"], reference=base["reference"]))
    changes = [
        {"legs": [(accts["alice"], -1_001), (accts["revenue"], 1_001)]},  # amount
        {"legs": [(accts["alice"], -1_000), (accts["bob"], 1_000)]},  # account
        {"legs": [(accts["alice"], -1_000), (accts["bob"], 500), (accts["revenue"], 500)]},
        {"kind": "refund"}, {"uin": 2}, {"reference": "order:2"}, {"reference": None},
    ]
    for change in changes:
        other = {**base, **change}
        spec = _tx("k1", *other["legs"], kind=other["kind"], uin=other["uin"],
                   reference=other["reference"])
        error = _refused(rt, IdempotencyConflict,
                         lambda conn: ledger.transfer(conn, rt.clock, spec))
        assert error.field == "idempotency_key" and "k1" in error.message_en
    assert _balances(rt, accts)["alice"] == 9_000


# ---------------------------------------------------------------- bounds

@pytest.mark.spec("BAL-4")
def test_bounds_refuse_overdraw_with_nothing_written(rt, accts):
    spec = _tx("too-much", (accts["alice"], -10_001), (accts["revenue"], 10_001), uin=1)
    error = _refused(rt, InsufficientBalance, lambda conn: ledger.transfer(conn, rt.clock, spec))
    assert error.details["account"] == "t:alice:cash"
    assert error.details["balance_after"] == -1
    # the key was not burnt: the same key may carry a valid request afterwards
    with rt.engine.begin() as conn:
        ok = ledger.transfer(conn, rt.clock, _tx("too-much", (accts["alice"], -10_000),
                                                 (accts["revenue"], 10_000), uin=1))
    assert ok.created and ok.balances_after == {accts["alice"]: 0}
    assert _balances(rt, accts)["alice"] == 0
    assert _clean(rt)


def test_a_refused_leg_undoes_the_legs_already_applied(rt, accts):
    # alice (lower id) is credited first, then bob's debit breaks its bound
    spec = _tx("half", (accts["alice"], 500), (accts["bob"], -500))
    assert accts["alice"] < accts["bob"]
    _refused(rt, InsufficientBalance, lambda conn: ledger.transfer(conn, rt.clock, spec))
    assert _balances(rt, accts)["alice"] == 10_000


def test_max_balance_bound(rt, accts):
    with rt.engine.begin() as conn:
        arrears = ledger.open_account(conn, rt.clock, "t:alice:arrears", "arrears", uin=1,
                                      max_balance=0)
        ledger.transfer(conn, rt.clock, _tx("owe", (arrears, -300), (accts["revenue"], 300)))
    spec = _tx("overpay", (accts["alice"], -301), (arrears, 301))
    _refused(rt, InsufficientBalance, lambda conn: ledger.transfer(conn, rt.clock, spec))
    with rt.engine.begin() as conn:
        ledger.transfer(conn, rt.clock, _tx("repay", (accts["alice"], -300), (arrears, 300)))
        assert ledger.balance_of(conn, arrears) == 0
    assert _clean(rt)


def test_open_account_is_idempotent_by_code(rt, accts):
    with rt.engine.begin() as conn:
        again = ledger.open_account(conn, rt.clock, "t:alice:cash", "cash", uin=1,
                                    min_balance=0)
    assert again == accts["alice"]


# ---------------------------------------------------------------- batches

def test_transfer_batch_writes_all(rt, accts):
    specs = [_tx(f"b{i}", (accts["alice"], -100), (accts["bob"], 100)) for i in range(5)]
    with rt.engine.begin() as conn:
        results = ledger.transfer_batch(conn, rt.clock, specs)
    assert [r.created for r in results] == [True] * 5
    assert len({r.txn_id for r in results}) == 5
    assert [r.balances_after for r in results] == [
        {accts["alice"]: 10_000 - 100 * i, accts["bob"]: 100 * i} for i in range(1, 6)]
    with rt.engine.connect() as conn:
        after = conn.execute(select(ledger_postings.c.balance_after)
                             .where(ledger_postings.c.account_id == accts["alice"])
                             .order_by(ledger_postings.c.id)).scalars().all()
    assert after == [10_000, 9_900, 9_800, 9_700, 9_600, 9_500]
    bal = _balances(rt, accts)
    assert (bal["alice"], bal["bob"]) == (9_500, 500)
    assert _clean(rt)


def test_transfer_batch_is_all_or_nothing(rt, accts):
    specs = [_tx("ok-1", (accts["alice"], -4_000), (accts["bob"], 4_000)),
             _tx("ok-2", (accts["alice"], -4_000), (accts["revenue"], 4_000)),
             _tx("breaks", (accts["alice"], -4_000), (accts["free"], 4_000))]  # 3rd overdraws
    _refused(rt, InsufficientBalance, lambda conn: ledger.transfer_batch(conn, rt.clock, specs))
    unbalanced = specs[:2] + [_tx("bad", (accts["alice"], -1), (accts["bob"], 2))]
    _refused(rt, LedgerInvariantBroken,
             lambda conn: ledger.transfer_batch(conn, rt.clock, unbalanced))
    dup = specs[:1] + [_tx("ok-1", (accts["bob"], -1), (accts["free"], 1))]
    _refused(rt, InvalidInput, lambda conn: ledger.transfer_batch(conn, rt.clock, dup))
    assert _balances(rt, accts)["alice"] == 10_000


def test_transfer_batch_skips_known_keys_and_refuses_changed_ones(rt, accts):
    first = _tx("seen", (accts["alice"], -100), (accts["bob"], 100))
    with rt.engine.begin() as conn:
        earlier = ledger.transfer(conn, rt.clock, first)
    with rt.engine.begin() as conn:
        results = ledger.transfer_batch(conn, rt.clock, [
            first, _tx("new", (accts["alice"], -50), (accts["bob"], 50))])
    assert (results[0].txn_id, results[0].created) == (earlier.txn_id, False)
    assert results[1].created
    assert _balances(rt, accts)["bob"] == 150
    changed = [_tx("fresh", (accts["alice"], -1), (accts["bob"], 1)),
               _tx("seen", (accts["alice"], -101), (accts["bob"], 101))]
    _refused(rt, IdempotencyConflict, lambda conn: ledger.transfer_batch(conn, rt.clock, changed))
    assert _clean(rt)


# ---------------------------------------------------------------- holds

def _hold(conn, rt, accts, key="h1", amount=3_000):
    return ledger.create_hold(conn, rt.clock, key, [HoldLeg(accts["alice"], accts["escrow"],
                                                            amount)], uin=1, reference="res:1")


def _hold_row(rt, hold_id):
    with rt.engine.connect() as conn:
        return conn.execute(select(ledger_holds).where(ledger_holds.c.id == hold_id)).one()


def test_hold_then_partial_post_returns_the_rest(rt, accts):
    with rt.engine.begin() as conn:
        hold_id = _hold(conn, rt, accts)
    bal = _balances(rt, accts)
    assert (bal["alice"], bal["escrow"]) == (7_000, 3_000)
    assert _hold_row(rt, hold_id).state == "pending"
    with rt.engine.begin() as conn:
        result = ledger.post_hold(conn, rt.clock, hold_id, accts["revenue"], 1_200)
    bal = _balances(rt, accts)
    assert (bal["alice"], bal["escrow"], bal["revenue"]) == (8_800, 0, 1_200)
    row = _hold_row(rt, hold_id)
    assert (row.state, row.amount, row.posted_amount, row.settle_txn_id) == (
        "posted", 3_000, 1_200, result.txn_id)
    assert _clean(rt)


def test_hold_full_post_and_multi_leg_hold(rt, accts):
    with rt.engine.begin() as conn:
        ledger.transfer(conn, rt.clock, _tx("fund-bob", (accts["bank"], -500), (accts["bob"], 500)))
        hold_id = ledger.create_hold(conn, rt.clock, "h2", [
            HoldLeg(accts["bob"], accts["escrow"], 500),
            HoldLeg(accts["alice"], accts["escrow"], 1_000)])
    assert _balances(rt, accts)["escrow"] == 1_500
    with rt.engine.begin() as conn:
        ledger.post_hold(conn, rt.clock, hold_id, accts["revenue"], 700)
    bal = _balances(rt, accts)
    # legs are paid in order: bob's 500 first, then 200 of alice's 1,000
    assert (bal["bob"], bal["alice"], bal["escrow"], bal["revenue"]) == (0, 9_800, 0, 700)
    with rt.engine.begin() as conn:
        full = _hold(conn, rt, accts, "h3", 800)
        ledger.post_hold(conn, rt.clock, full, accts["revenue"])
    bal = _balances(rt, accts)
    assert (bal["alice"], bal["escrow"], bal["revenue"]) == (9_000, 0, 1_500)
    assert _hold_row(rt, full).posted_amount == 800
    assert _clean(rt)


def test_hold_void_returns_everything(rt, accts):
    with rt.engine.begin() as conn:
        hold_id = _hold(conn, rt, accts)
        ledger.void_hold(conn, rt.clock, hold_id)
    bal = _balances(rt, accts)
    assert (bal["alice"], bal["escrow"]) == (10_000, 0)
    row = _hold_row(rt, hold_id)
    assert (row.state, row.posted_amount) == ("voided", 0)
    assert _clean(rt)


def test_hold_cannot_exceed_the_source_and_is_idempotent(rt, accts):
    _refused(rt, InsufficientBalance, lambda conn: _hold(conn, rt, accts, "big", 10_001))
    _refused(rt, InvalidInput, lambda conn: _hold(conn, rt, accts, "neg", -1))
    with rt.engine.begin() as conn:
        hold_id = _hold(conn, rt, accts, "h", 2_000)
    before = _counts(rt)
    with rt.engine.begin() as conn:
        assert _hold(conn, rt, accts, "h", 2_000) == hold_id
    assert _counts(rt) == before
    _refused(rt, IdempotencyConflict, lambda conn: _hold(conn, rt, accts, "h", 2_001))


def test_a_settled_hold_cannot_be_settled_again(rt, accts):
    def settle(conn, how, hold_id):
        if how == "post":
            return ledger.post_hold(conn, rt.clock, hold_id, accts["revenue"], 1_000)
        return ledger.void_hold(conn, rt.clock, hold_id)

    for i, (first, second) in enumerate([("post", "post"), ("post", "void"),
                                         ("void", "void"), ("void", "post")]):
        with rt.engine.begin() as conn:
            hold_id = _hold(conn, rt, accts, f"h{i}")
            settle(conn, first, hold_id)
        error = _refused(rt, Conflict, lambda conn: settle(conn, second, hold_id))
        assert error.field == "hold_id"
        assert _hold_row(rt, hold_id).state == ("posted" if first == "post" else "voided")
    bal = _balances(rt, accts)  # two holds paid 1,000 each, two returned in full
    assert (bal["alice"], bal["escrow"], bal["revenue"]) == (8_000, 0, 2_000)
    assert _clean(rt)


def test_post_amount_must_be_within_the_hold(rt, accts):
    with rt.engine.begin() as conn:
        hold_id = _hold(conn, rt, accts)
    for amount in (0, -1, 3_001):
        _refused(rt, InvalidInput, lambda conn: ledger.post_hold(conn, rt.clock, hold_id,
                                                                 accts["revenue"], amount))
        assert _hold_row(rt, hold_id).state == "pending"  # the claim was rolled back too
    with rt.engine.begin() as conn:
        ledger.post_hold(conn, rt.clock, hold_id, accts["revenue"], 3_000)
    assert _balances(rt, accts)["revenue"] == 3_000


def test_unknown_hold(rt, accts):
    _refused(rt, NotFound, lambda conn: ledger.void_hold(conn, rt.clock, 424242))


# ---------------------------------------------------------------- reversal

def test_reversal_posts_the_opposite_and_only_once(rt, accts):
    with rt.engine.begin() as conn:
        paid = ledger.transfer(conn, rt.clock, _tx("pay", (accts["alice"], -2_000),
                                                   (accts["bob"], 1_500),
                                                   (accts["revenue"], 500), uin=1))
        rev = ledger.reverse(conn, rt.clock, paid.txn_id, "undo-pay", memo="wrong price")
    assert rev.created and rev.txn_id != paid.txn_id
    with rt.engine.connect() as conn:
        legs = dict(conn.execute(select(ledger_postings.c.account_id, ledger_postings.c.amount)
                                 .where(ledger_postings.c.txn_id == rev.txn_id)).all())
        row = conn.execute(select(ledger_transactions)
                           .where(ledger_transactions.c.id == rev.txn_id)).one()
    assert legs == {accts["alice"]: 2_000, accts["bob"]: -1_500, accts["revenue"]: -500}
    assert (row.kind, row.reverses_txn_id, row.uin, row.memo) == ("reversal", paid.txn_id, 1,
                                                                   "wrong price")
    bal = _balances(rt, accts)
    assert (bal["alice"], bal["bob"], bal["revenue"]) == (10_000, 0, 0)

    before = _counts(rt)
    with rt.engine.begin() as conn:  # the same reversal request again: same answer
        again = ledger.reverse(conn, rt.clock, paid.txn_id, "undo-pay")
    assert (again.txn_id, again.created) == (rev.txn_id, False)
    assert _counts(rt) == before
    error = _refused(rt, Conflict,  # a second reversal under another key
                     lambda conn: ledger.reverse(conn, rt.clock, paid.txn_id, "undo-pay-2"))
    assert "already reversed" in error.message_en
    assert _clean(rt)


def test_reversal_respects_bounds(rt, accts):
    with rt.engine.begin() as conn:
        paid = ledger.transfer(conn, rt.clock, _tx("give", (accts["alice"], -1_000),
                                                   (accts["bob"], 1_000)))
        ledger.transfer(conn, rt.clock, _tx("bob-spends", (accts["bob"], -600),
                                            (accts["revenue"], 600)))
    _refused(rt, InsufficientBalance,
             lambda conn: ledger.reverse(conn, rt.clock, paid.txn_id, "undo-give"))
    _refused(rt, NotFound, lambda conn: ledger.reverse(conn, rt.clock, 987_654, "undo-ghost"))
    assert _clean(rt)


# ---------------------------------------------------------------- reconciliation

@pytest.mark.spec("BAL-6")
def test_reconcile_is_clean_after_ordinary_work(rt, accts):
    with rt.engine.begin() as conn:
        ledger.transfer(conn, rt.clock, _tx("a", (accts["alice"], -1_000), (accts["bob"], 1_000)))
        hold_id = _hold(conn, rt, accts)
        ledger.post_hold(conn, rt.clock, hold_id, accts["revenue"], 10)
        txn = ledger.transfer(conn, rt.clock, _tx("b", (accts["bob"], -10), (accts["free"], 10)))
        ledger.reverse(conn, rt.clock, txn.txn_id, "undo-b")
    with rt.engine.connect() as conn:
        assert reconcile(conn) == []
        assert reconcile(conn, uin=1) == []
        assert reconcile(conn, uin=2) == []


@pytest.mark.spec("BAL-6")
def test_reconcile_finds_a_tampered_cached_balance(rt, accts):
    with rt.engine.begin() as conn:
        ledger.transfer(conn, rt.clock, _tx("a", (accts["alice"], -1_000), (accts["bob"], 1_000)))
    with rt.engine.begin() as conn:  # someone edits the cached balance behind the ledger's back
        conn.execute(text("UPDATE ledger_accounts SET balance = balance + 1 WHERE id = :id"),
                     {"id": accts["bob"]})
    with rt.engine.connect() as conn:
        found = reconcile(conn)
        assert [d.to_dict() for d in found] == [{"kind": "balance_mismatch",
                                                 "subject": "t:bob:cash",
                                                 "expected": 1_000, "actual": 1_001}]
        assert [d.subject for d in reconcile(conn, uin=2)] == ["t:bob:cash"]
        assert reconcile(conn, uin=1) == []  # alice is fine


@pytest.mark.spec("BAL-6")
def test_reconcile_finds_an_account_with_no_postings_but_a_balance(rt, accts):
    with rt.engine.begin() as conn:
        conn.execute(update(ledger_accounts).where(ledger_accounts.c.id == accts["free"])
                     .values(balance=-7))
    with rt.engine.connect() as conn:
        assert [(d.kind, d.subject, d.expected, d.actual) for d in reconcile(conn)] == [
            ("balance_mismatch", "t:free", 0, -7)]


@pytest.mark.spec("BAL-6")
def test_reconcile_finds_an_unbalanced_transaction_and_out_of_bounds(rt, accts):
    with rt.engine.begin() as conn:
        paid = ledger.transfer(conn, rt.clock, _tx("a", (accts["alice"], -1_000),
                                                   (accts["revenue"], 1_000), uin=1))
    with rt.engine.begin() as conn:  # a posting edited in place: the transaction no longer sums
        conn.execute(update(ledger_postings).where(ledger_postings.c.txn_id == paid.txn_id,
                                                   ledger_postings.c.account_id
                                                   == accts["revenue"]).values(amount=900))
    with rt.engine.connect() as conn:
        assert [(d.kind, d.subject, d.actual) for d in reconcile(conn)] == [
            ("unbalanced_transaction", f"txn:{paid.txn_id}", -100)]
        assert [d.kind for d in reconcile(conn, uin=1)] == ["unbalanced_transaction"]
    with rt.engine.begin() as conn:  # a bounded balance pushed below its floor, postings too
        conn.execute(update(ledger_accounts).where(ledger_accounts.c.id == accts["bob"])
                     .values(balance=-5))
        conn.execute(text("UPDATE ledger_postings SET amount = 1000 WHERE txn_id = :t "
                          "AND account_id = :a"), {"t": paid.txn_id, "a": accts["revenue"]})
    with rt.engine.connect() as conn:
        kinds = sorted((d.kind, d.subject, d.expected, d.actual) for d in reconcile(conn))
    assert kinds == [("balance_mismatch", "t:bob:cash", 0, -5),
                     ("out_of_bounds", "t:bob:cash", 0, -5)]


def test_a_hold_transaction_cannot_be_reversed(rt):
    """Reversing a hold's transaction would empty its escrow and strand the hold."""
    import pytest as _pytest

    from feecenter.errors import Conflict as _Conflict
    from feecenter.ledger import service as _ledger

    clock = rt.clock
    with rt.engine.begin() as conn:
        source = _ledger.open_account(conn, clock, "t:src", "cash", uin=1, min_balance=0)
        escrow = _ledger.open_account(conn, clock, "t:esc", "frozen_cash", uin=1, min_balance=0)
        bank = _ledger.open_account(conn, clock, "t:bank", "bank", cached=False)
        _ledger.transfer(conn, clock, _ledger.Transfer("fund", (
            _ledger.Posting(bank, -500), _ledger.Posting(source, 500)), kind="fund"))
        hold = _ledger.create_hold(conn, clock, "h", [_ledger.HoldLeg(source, escrow, 200)], uin=1)
        hold_txn = conn.execute(_ledger.select(_ledger.ledger_holds.c.hold_txn_id).where(
            _ledger.ledger_holds.c.id == hold)).scalar_one()
    with rt.engine.begin() as conn, _pytest.raises(_Conflict) as err:
        _ledger.reverse(conn, clock, hold_txn, "undo-hold")
    assert err.value.field == "txn_id"
