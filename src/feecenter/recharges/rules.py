"""Pure recharge rules: channels, amount limits (RCH-2), frequency control (RCH-3),
mini-program codes bound to their creator (RCH-4), the provider's payment states
(RCH-6). Plain values, no database.

Every limit lives here, in one place; amounts in fen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from feecenter.errors import FeeCenterError, invalid
from feecenter.money import format_yuan

WECHAT, QQ, NETBANK, INTL_CARD = "wechat", "qq", "netbank", "intl_card"
CHANNELS = (WECHAT, QQ, NETBANK, INTL_CARD)
ENABLED_CHANNELS = (WECHAT, QQ, NETBANK)  # the legacy international-card channel is off (RCH-1)
CHANNEL_NAMES = {WECHAT: ("微信支付", "WeChat Pay"), QQ: ("QQ钱包", "QQ Wallet"),
                 NETBANK: ("网银", "online banking"), INTL_CARD: ("国际信用卡", "international card")}

MIN_FEN = 1                 # 0.01 yuan
MAX_FEN = 999_999_900       # 9,999,999.00 yuan (RCH-2)

PENDING, PAID, FAILED, CLOSED = "pending", "paid", "failed", "closed"
STATES = (PENDING, PAID, FAILED, CLOSED)

QR, MINI_PROGRAM = "qr", "mini_program"  # where a recharge was created (RCH-4)
SOURCES = (QR, MINI_PROGRAM)
PAYER_MISMATCH = "账号不一致，请核实后重试"  # a mini-program code paid by another identity (RCH-4)
# a payment for a cancelled account (ACC-5): not credited, to be refunded to the payer
ACCOUNT_CANCELLED = "账号已注销，款项须原路退回 / the account is cancelled: refund the payer"
PAYMENT_TERM = timedelta(minutes=30)   # a pending recharge is closed after this (RCH-6)
RECOVERY_AFTER = timedelta(minutes=2)  # a pending recharge this old is queried (missed notice)


@dataclass(frozen=True)
class ChannelLimit:
    """Per payer identity; None: no platform limit."""

    per_payment: int | None = None
    per_day: int | None = None
    per_month: int | None = None


LIMITS = {
    WECHAT: ChannelLimit(per_payment=5_000_000, per_day=5_000_000),
    QQ: ChannelLimit(per_payment=5_000_000, per_day=5_000_000),
    NETBANK: ChannelLimit(),
    INTL_CARD: ChannelLimit(),
}
WECHAT_INTL_LIMIT = ChannelLimit(per_payment=600_000, per_day=1_000_000, per_month=5_000_000)


@dataclass(frozen=True)
class FrequencyControl:
    """RCH-3: more than ``max_payers`` distinct payers recharging one account within
    ``window`` starts a block of the WeChat QR code for ``block``."""

    max_payers: int = 5
    window: timedelta = timedelta(minutes=10)
    block: timedelta = timedelta(hours=1)


FREQUENCY = FrequencyControl()


class RechargeRefused(FeeCenterError):
    """A recharge the rules refuse (a limit, frequency control); 403 naming the limit."""

    code = "RechargeRefused"
    http_status = 403


def limit_of(channel: str, intl_card: bool) -> ChannelLimit:
    return WECHAT_INTL_LIMIT if channel == WECHAT and intl_card else LIMITS[channel]


def check_source(source: object, channel: str, payer: str | None) -> str:
    """RCH-4: a mini-program recharge is a WeChat payment bound to its creator's payer
    identity, which must be given."""
    if source not in SOURCES:
        raise invalid("source", f"未知的充值来源：{source}", f"unknown recharge source: {source}",
                      allowed=list(SOURCES))
    if source == MINI_PROGRAM and channel != WECHAT:
        raise invalid("source", "小程序充值仅支持微信支付",
                      "a mini-program recharge is paid with WeChat Pay only", allowed=[WECHAT])
    if source == MINI_PROGRAM and not payer:
        raise invalid("payer", "小程序充值须提供付款人身份（微信 openid）",
                      "a mini-program recharge needs the creator's payer identity (WeChat openid)")
    return source


def check_channel(channel: object, enabled: tuple[str, ...] = ENABLED_CHANNELS) -> str:
    if channel not in CHANNELS:
        raise invalid("channel", f"不支持的充值渠道：{channel}",
                      f"unknown recharge channel: {channel}", allowed=list(CHANNELS))
    if channel not in enabled:
        zh, en = CHANNEL_NAMES[channel]
        raise invalid("channel", f"充值渠道未开通：{zh}", f"recharge channel is disabled: {en}")
    return channel


def check_amount(amount: int) -> None:
    """The global range of one recharge (RCH-2)."""
    if not MIN_FEN <= amount <= MAX_FEN:
        raise invalid("amount", "单笔充值金额须在 0.01 至 9,999,999.00 元之间",
                      "one recharge must be between 0.01 and 9,999,999.00 yuan",
                      min="0.01", max="9999999.00")


def check_limits(channel: str, intl_card: bool, amount: int, *, used_today: int,
                 used_month: int) -> None:
    """The channel's per-payment, day and month limits for this payer (RCH-2);
    ``used_*``: what the payer's live (pending or paid) recharges of the channel hold."""
    limit = limit_of(channel, intl_card)
    zh, en = CHANNEL_NAMES[channel]
    if intl_card:
        zh, en = f"{zh}（国际卡）", f"{en} (international card)"
    for name, cap, used, zh_p, en_p in (
            ("per_payment", limit.per_payment, 0, "单笔", "one payment"),
            ("per_day", limit.per_day, used_today, "单日", "a day"),
            ("per_month", limit.per_month, used_month, "单月", "a month")):
        if cap is not None and used + amount > cap:
            left = max(cap - used, 0)
            raise RechargeRefused(
                f"{zh}{zh_p}充值限额 {format_yuan(cap)} 元，本次最多可充 {format_yuan(left)} 元",
                f"{en} allows at most {format_yuan(cap)} yuan {en_p}; at most "
                f"{format_yuan(left)} yuan can be recharged now",
                field="amount", limit=name, cap=format_yuan(cap), left=format_yuan(left))


def too_many_payers(recent_payers: set[str], payer: str,
                    control: FrequencyControl = FREQUENCY) -> bool:
    """RCH-3: would ``payer`` make the distinct payers of the window exceed the maximum?"""
    return len(recent_payers | {payer}) > control.max_payers


def qr_blocked_error() -> RechargeRefused:
    return RechargeRefused("暂时无法获取微信支付二维码",
                           "the WeChat Pay QR code is temporarily unavailable "
                           "(too many different payers recently; online banking still works)",
                           field="channel", limit="frequency")
