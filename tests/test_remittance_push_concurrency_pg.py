"""The bank's push credits one transfer once under concurrency (RMT-2, PostgreSQL).

8 real threads receive the same signed push at once (the same nonce): the INSERT
that wins the nonce imports it, the 7 others are recorded as replayed. Then 8
threads push one new transfer under 8 fresh nonces: the INSERT that wins the
bank reference credits it, the others are harmless duplicates. Either way one
remittance, one credit, every push recorded, reconcile clean. SQLite serialises
writers, so this runs on PostgreSQL only.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from feecenter.db.engine import transaction
from feecenter.funds import service as funds
from feecenter.remittances import push_log
from feecenter.remittances import service as remittances
from feecenter.remittances.service import Settings
from feecenter.remittances.statements import push
from tests.helpers import OPS, assert_reconciled, balance, new_account, run_threads
from tests.test_remittance_push import pushes, records

pytestmark = [pytest.mark.postgres_only, pytest.mark.spec("RMT-2")]
THREADS = 8
BANK_ADDRESS = "192.0.2.10"
SECRET = b"c" * 40
ENTITY = "北京示例科技有限公司"


def signed(rt, number: str, reference: str, nonce: str) -> tuple[bytes, dict]:
    body = json.dumps({"bank_reference": reference, "receiving_account": Settings().prefixes[0],
                       "payee_account": number, "payer_name": ENTITY, "amount": "100.00",
                       "currency": "CNY", "value_date": "2026-12-07"}).encode()
    stamp = str(int(rt.clock.now().timestamp()))
    return body, {"timestamp": stamp, "nonce": nonce,
                  "signature": push.sign(SECRET, stamp, nonce, body)}


def test_eight_identical_or_repeated_pushes_credit_one_transfer_once(rt):
    uin = new_account(rt, "raced", enterprise_name=ENTITY, uscc="91110108551385082Q")
    with transaction(rt.engine) as conn:
        number = remittances.receiving_details(conn, rt.clock, OPS, uin)["accounts"][0]["number"]
        for purpose in ("bank", "remittance_suspense"):  # the platform accounts exist before the race
            funds.platform_account(conn, rt.clock, purpose)
    body, headers = signed(rt, number, "RACE-1", "race-nonce-000000001")
    outcomes: list = [None] * THREADS

    def same(i: int) -> None:
        outcomes[i] = push_log.receive_push(rt.engine, rt.clock, body, client=BANK_ADDRESS,
                                            secret=SECRET, **headers).outcome

    assert run_threads(THREADS, same) == []
    assert Counter(outcomes) == {"accepted": 1, "replayed": THREADS - 1}

    def fresh(i: int) -> None:
        raw, signed_headers = signed(rt, number, "RACE-2", f"race-nonce-1{i:015d}")
        outcomes[i] = push_log.receive_push(rt.engine, rt.clock, raw, client=BANK_ADDRESS,
                                            secret=SECRET, **signed_headers).outcome

    assert run_threads(THREADS, fresh) == []
    assert Counter(outcomes) == {"accepted": 1, "duplicate": THREADS - 1}
    assert records(rt) == 2 and balance(rt, uin).cash == 2 * 100_00
    assert len(pushes(rt)) == 2 * THREADS
    assert_reconciled(rt)


def test_eight_forgers_at_once_are_recorded_only_up_to_the_limit(rt):
    """Failed pushes of one address are counted by the shared limiter's conditional
    upsert: 8 threads sending 3 forged pushes each record exactly the limit, the rest
    are limited (429, nothing written)."""
    body = b'{"bank_reference": "FORGED"}'
    outcomes: list = [None] * THREADS

    def forge(i: int) -> None:
        outcomes[i] = [push_log.receive_push(
            rt.engine, rt.clock, body, client="2001:db8:7:7::" + f"{i + 1:x}", secret=SECRET,
            timestamp=str(int(rt.clock.now().timestamp())), nonce=f"forged-nonce-{i:04d}-{n:04d}",
            signature="0" * 64).outcome for n in range(3)]

    assert run_threads(THREADS, forge) == []
    counted = Counter(o for per_thread in outcomes for o in per_thread)
    assert counted == {"forged": push_log.MAX_FAILED_PER_MINUTE,
                       "limited": 3 * THREADS - push_log.MAX_FAILED_PER_MINUTE}
    assert len(pushes(rt)) == push_log.MAX_FAILED_PER_MINUTE
