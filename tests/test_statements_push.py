"""The signed push of one transfer (RMT-2): HMAC-SHA256 over timestamp, nonce
and body; forged, late and malformed pushes refused; the nonce returned so the
caller can refuse a replay."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest

from feecenter.clock import FixedClock
from feecenter.errors import AuthFailed, ConfigurationError
from feecenter.remittances.statements import StatementRefused, push

pytestmark = pytest.mark.spec("RMT-2")
SECRET = b"s" * 32
NOW = datetime(2026, 12, 7, 8, 0, tzinfo=timezone.utc)
NONCE = "n0nce-0123456789abcdef"


def body(**changes) -> bytes:
    fields = dict(bank_reference="B20261207001", receiving_account="310066726018010",
                  payee_account="3100667260180100000000042", payer_name="上海示例有限公司",
                  payer_account="6222020200112233", payer_bank="中国银行上海分行", amount="1234.56",
                  currency="CNY", memo="充值", value_date="2026-12-07")
    fields.update(changes)
    return json.dumps({k: v for k, v in fields.items() if v is not None}, ensure_ascii=False).encode()


def verify(raw: bytes, *, at: datetime = NOW, timestamp: int | None = None, signature: str | None = None,
           nonce: str = NONCE):
    stamp = str(int((timestamp if timestamp is not None else NOW.timestamp())))
    return push.verify_push(raw, timestamp=stamp, nonce=nonce,
                            signature=signature or push.sign(SECRET, stamp, nonce, raw),
                            secret=SECRET, clock=FixedClock(at))


def test_a_well_signed_push_gives_the_transfer_and_nonce():
    pushed = verify(body())
    transfer = pushed.transfer
    assert pushed.nonce == NONCE
    assert transfer.amount == 123_456 and transfer.currency == "CNY"
    assert transfer.payee_account == "3100667260180100000000042"
    assert transfer.payer_name == "上海示例有限公司" and transfer.value_date == date(2026, 12, 7)


def test_a_forged_signature_or_altered_body_is_refused():
    raw = body()
    stamp = str(int(NOW.timestamp()))
    good = push.sign(SECRET, stamp, NONCE, raw)
    with pytest.raises(AuthFailed) as caught:
        verify(body(amount="9234.56"), signature=good)
    assert caught.value.reason == "SignatureFailure"
    with pytest.raises(AuthFailed):
        verify(raw, signature=push.sign(b"x" * 32, stamp, NONCE, raw))
    with pytest.raises(AuthFailed):  # the nonce is signed too
        verify(raw, signature=good, nonce="another-nonce-012345")


@pytest.mark.parametrize("skew", [-301, 301])
def test_a_late_or_early_timestamp_is_refused(skew):
    with pytest.raises(AuthFailed) as caught:
        verify(body(), timestamp=int(NOW.timestamp()) + skew)
    assert caught.value.reason == "SignatureExpire"
    verify(body(), timestamp=int(NOW.timestamp()) + (300 if skew > 0 else -300))


@pytest.mark.parametrize("raw, field", [
    (b"not json", "push"),
    (b'{"amount": "1.00", "amount": "2.00"}', "push"),
    (body(amount="0.00"), "push.amount"),
    (body(amount="-1.00"), "push.amount"),
    (body(amount="1.005"), "push.amount"),
    (body(amount=12), "push.amount"),
    (body(currency="cny"), "push.currency"),
    (body(value_date="2026-13-01"), "push.value_date"),
    (body(payer_name=None), "push.payer_name"),
    (body(extra="x"), "push.extra"),
])
def test_a_malformed_body_is_refused_naming_the_field(raw, field):
    with pytest.raises(StatementRefused) as caught:
        verify(raw)
    assert caught.value.field == field


def test_malformed_headers_are_refused():
    raw = body()
    with pytest.raises(AuthFailed):
        push.verify_push(raw, timestamp="１２３", nonce=NONCE, signature="0" * 64, secret=SECRET,
                         clock=FixedClock(NOW))
    with pytest.raises(AuthFailed):
        push.verify_push(raw, timestamp="1", nonce="short", signature="0" * 64, secret=SECRET,
                         clock=FixedClock(NOW))


def test_the_secret_comes_from_the_environment():
    assert push.secret_from_env({push.SECRET_ENV: "k" * 32}) == b"k" * 32
    with pytest.raises(ConfigurationError):
        push.secret_from_env({push.SECRET_ENV: "short"})
