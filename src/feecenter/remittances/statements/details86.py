"""The :86: convention: how an MT940 statement line's information field names
the payee number, the payer and the memo (docs/statements.md, "MT940 :86:").

Three shapes are read, first match wins:

1. Slash keywords, the platform bank's structured details (and the Dutch/SEPA
   style of Rabobank, ABN AMRO, ING): ``/PAYEE/<number>/PAYER/<name>/PACC/<account>
   /PBNK/<bank>/MEMO/<text>``; ``NAME``, ``IBAN``, ``BIC`` and ``REMI`` are read as
   PAYER, PACC, PBNK and MEMO. A value runs to the next known keyword, so a memo may
   hold slashes.
2. ``?``-subfields (ZKA/DFÜ, German banks): ``?20``–``?29`` memo, ``?30`` payer bank,
   ``?31`` payer account, ``?32``–``?33`` payer name.
3. Free text: the whole field is the memo; a payer name is taken from
   "付款人(户名|名称)：…" or "PAYER: …" when present.

SWIFT wraps the field at 65 characters, so its lines are joined without a separator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SLASH_KEYS = {"PAYEE": "payee", "PAYER": "payer_name", "NAME": "payer_name",
               "PACC": "payer_account", "IBAN": "payer_account", "PBNK": "payer_bank",
               "BIC": "payer_bank", "MEMO": "memo", "REMI": "memo",
               # known Dutch/SEPA keywords whose values we do not use
               "EREF": None, "ORDP": None, "BENM": None, "MARF": None, "CSID": None,
               "RTRN": None, "ISDT": None, "ULTC": None, "ULTD": None, "PURP": None,
               "TRCD": None, "CNTP": None}
_SLASH = re.compile(r"/(" + "|".join(_SLASH_KEYS) + r")/")
_SUBFIELD = re.compile(r"\?(\d{2})")
_FREE_PAYER = re.compile(r"(?:付款人(?:户名|名称)?|付款方|PAYER(?: NAME)?)\s*[:：]\s*([^;；,，/|]+)",
                         re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Details:
    payee: str = ""          # empty: the statement's own account (:25:)
    payer_name: str = ""
    payer_account: str = ""
    payer_bank: str = ""
    memo: str = ""


def parse_details(text: str | None) -> Details:
    joined = "".join((text or "").splitlines()).strip()
    if not joined:
        return Details()
    if _SLASH.match(joined):
        return _slash(joined)
    if _SUBFIELD.search(joined) and _SUBFIELD.search(joined).start() <= 3:
        return _subfields(joined)
    found = _FREE_PAYER.search(joined)
    return Details(payer_name=found.group(1).strip() if found else "", memo=joined)


def _slash(text: str) -> Details:
    values: dict[str, str] = {}
    marks = list(_SLASH.finditer(text))
    for mark, following in zip(marks, marks[1:] + [None]):
        target = _SLASH_KEYS[mark.group(1)]
        value = text[mark.end(): following.start() if following else len(text)].strip().strip("/")
        if target and value and target not in values:
            values[target] = value.strip()
    return Details(**values)


def _subfields(text: str) -> Details:
    parts: dict[int, str] = {}
    marks = list(_SUBFIELD.finditer(text))
    for mark, following in zip(marks, marks[1:] + [None]):
        parts[int(mark.group(1))] = text[mark.end(): following.start() if following else len(text)]
    memo = "".join(parts.get(n, "") for n in range(20, 30)).strip()
    name = "".join(parts.get(n, "") for n in (32, 33)).strip()
    return Details(payer_name=name, payer_account=parts.get(31, "").strip(),
                   payer_bank=parts.get(30, "").strip(), memo=memo)
