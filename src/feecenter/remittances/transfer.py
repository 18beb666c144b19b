"""One incoming bank transfer as read from a statement line or a pushed message.

Every statement format (MT940, camt.053, the signed push) is parsed into
``Transfer`` values; matching, verification and crediting only ever see these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class Transfer:
    bank_reference: str      # the bank's own reference: unique per receiving account, makes re-import harmless
    receiving_account: str   # the platform's bank account the statement is for (MT940 :25:, camt Stmt/Acct)
    payee_account: str       # the number the payer paid to: a 25-digit dedicated number, a bare
                             # 15-digit platform account (legacy, RMT-10), or anything else (not ours)
    payer_name: str
    payer_account: str
    payer_bank: str
    amount: int              # minor units of ``currency`` (fen for CNY), > 0: only credits are transfers
    currency: str            # ISO 4217, upper case
    memo: str
    value_date: date
    line: int = 0            # where it was read (line number in MT940, entry index in camt), for messages
