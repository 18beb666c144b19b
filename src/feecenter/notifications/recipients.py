"""Who receives each notification kind (ARR-3, ACC-2), and by which channels.

``RECIPIENTS`` maps every template code to the recipients its rule names:
``ACCOUNT`` (the contact email and phone the account set, ACC-1) and user
roles. ``addresses`` turns that into (channel, address) pairs from the people
``accounts.service.contacts`` lists; ``readable_by`` says which kinds a role
sees among the in-site messages (the notification rule, docs/notifications.md: an in-site message always).

The kinds that state money owed or the balance go to the owner and finance
users only (ACC-2), and so do the renewal notices of resources stopped at
expiry and released (RNW-6): those who pay to restore them. The renewal
notices that state neither (expiry reminders, price changes: RNW-1, RNW-4)
also reach admins, who manage renewals. Readonly users get none.
"""

from __future__ import annotations


ACCOUNT = "account"  # the account's own contact email and phone (ACC-1)
_MONEY = (ACCOUNT, "owner", "finance")  # ARR-3: the owner and the finance sub-users
_RENEWAL = (*_MONEY, "admin")  # renewal notices: also who manages renewals (ACC-2)

RECIPIENTS: dict[str, tuple[str, ...]] = {
    "arrears_dunning": _MONEY,            # ARR-3 催缴通知
    "arrears_stop_warning": _MONEY,       # ARR-3 steps, each notified
    "resources_stopped": _MONEY,
    "resources_destroy_warning": _MONEY,  # ARR-3: a warning before destruction
    "resources_destroyed": _MONEY,
    "arrears_repaid_restored": _MONEY,
    "arrears_measure_offline": _MONEY,    # ARR-6: the operators' measures, each notified
    "arrears_measure_reclaim": _MONEY,
    "arrears_measure_damages": _MONEY,
    "arrears_measure_set_off": _MONEY,
    "balance_low": _MONEY,                # the balance: ACC-2, finance only
    "balance_warning": _MONEY,            # XTR-2: the daily balance warning
    "remittance_pending": _MONEY,         # RMT-4: the owner (and finance) told
    "remittance_review_failed": _MONEY,   # RMT-5
    "service_request_update": _MONEY,     # SRV-2: each state change of a 工单 (billing)
    "invoice_reversal_update": _MONEY,    # INV-6: a reversal submitted, released, rejected
    "withdrawal_failed": _MONEY,          # WDR-5: a payout failed, money held
    "renewal_stopped": _MONEY,            # RNW-6: expired into the recycle bin
    "renewal_released": _MONEY,           # RNW-6: released after the recovery period
    # RNW-3: states the balance, so the money recipients only
    "renewal_recharge_reminder": _MONEY,
    "renewal_reminder": _MONEY,  # RNW-3: the recharge reminder with the expiring ones
    # RNW-1/3/4: no balance; also the admins, who manage renewals (ACC-2)
    "renewal_expiry_reminder": _RENEWAL,
    "renewal_price_change": _RENEWAL,
    "account_cancelled": _MONEY,          # ACC-5: the owner (and finance) told
}


def addresses(template: str, contacts: dict) -> list[tuple[str, str]]:
    """(channel, address) pairs for ``template``, each once: the account's contacts, then
    each user's, in the order ``contacts`` lists them, for the recipients it names."""
    who = RECIPIENTS[template]
    people = [contacts] if ACCOUNT in who else []
    people += [u for u in contacts["users"] if u["role"] in who]
    found = [(channel, person[field].strip()) for person in people
             for channel, field in (("email", "email"), ("sms", "phone"))
             if person[field] and person[field].strip()]
    return list(dict.fromkeys(found))


def readable_by(role: str | None) -> list[str]:
    """The kinds whose in-site messages a user of ``role`` sees."""
    return sorted(code for code, who in RECIPIENTS.items() if role in who)
