"""Generated bank statement files for benchmarks and tests (reusable: the import
benchmark in benchmarks/statements.py builds on the same generators).

``write_mt940(path, lines)`` and ``write_camt053(path, lines, version)`` write one
statement of ``lines`` transactions (every ``debit_every``-th a debit, the rest
credits to dedicated 25-digit numbers with the platform bank's :86: convention or
camt RltdPties) whose balances add up, streaming to disk so that a million lines
take constant memory. Both return a ``Expected`` with the figures a parser must
find. Amounts and references are deterministic in ``seed``. ``party(index)``, when
given, says who paid whom on a credit line: ``Party(payee, payer, memo)`` (the import
benchmark mixes known accounts, unknown codes, other payers, holds and foreign
numbers with it); by default ``default_party``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

RECEIVING = "310066726018010"           # the platform's 15-digit account prefix (RMT-1)
START = "2026-12-01"


@dataclass(frozen=True)
class Expected:
    lines: int
    credit_count: int
    credit_total: int      # fen
    debit_count: int
    debit_total: int       # fen, negative
    opening: int
    closing: int


def _movements(lines: int, debit_every: int, seed: int):
    rng = random.Random(seed)
    for index in range(lines):
        fen = rng.randrange(1, 5_000_000)
        debit = debit_every and index % debit_every == debit_every - 1
        yield index, (-fen if debit else fen)


def _yuan(fen: int, sep: str) -> str:
    return f"{abs(fen) // 100}{sep}{abs(fen) % 100:02d}"


def dedicated_number(index: int) -> str:
    return RECEIVING + f"{index % 10_000_000_000:010d}"


@dataclass(frozen=True)
class Party:
    payee: str   # the number paid to
    payer: str   # the payer's name
    memo: str


def default_party(index: int) -> Party:
    return Party(dedicated_number(index), f"示例科技有限公司{index % 997}", f"充值 {index}")


def write_mt940(path: Path, lines: int, *, debit_every: int = 10, seed: int = 7,
                opening: int = 100_000_00, party=default_party) -> Expected:
    counts = {"c": 0, "ct": 0, "d": 0, "dt": 0}
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.write(f":20:STMT{seed}\n:25:{RECEIVING}\n:28C:1/1\n:60F:C261201CNY{_yuan(opening, ',')}\n")
        for index, fen in _movements(lines, debit_every, seed):
            mark = "C" if fen > 0 else "D"
            out.write(f":61:2612011201{mark}{_yuan(fen, ',')}NTRFNONREF//B{index:012d}\n")
            if fen > 0:
                counts["c"] += 1
                counts["ct"] += fen
                who = party(index)
                out.write(f":86:/PAYEE/{who.payee}/PAYER/{who.payer}"
                          f"/PACC/6222020200112233{index % 1000:03d}/PBNK/中国工商银行上海分行"
                          f"/MEMO/{who.memo}\n")
            else:
                counts["d"] += 1
                counts["dt"] += fen
                out.write(":86:/MEMO/手续费\n")
        closing = opening + counts["ct"] + counts["dt"]
        out.write(f":62F:{'C' if closing >= 0 else 'D'}261201CNY{_yuan(closing, ',')}\n-\n")
    return Expected(lines, counts["c"], counts["ct"], counts["d"], counts["dt"], opening, closing)


def write_camt053(path: Path, lines: int, version: str = "camt.053.001.08", *, debit_every: int = 10,
                  seed: int = 7, opening: int = 100_000_00, party=default_party) -> Expected:
    v08 = version.endswith(".08")
    credit_total = debit_total = credits = debits = 0
    for _, fen in _movements(lines, debit_every, seed):  # balances first: they precede the entries
        if fen > 0:
            credits, credit_total = credits + 1, credit_total + fen
        else:
            debits, debit_total = debits + 1, debit_total + fen
    closing = opening + credit_total + debit_total
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="urn:iso:std:iso:20022:tech:xsd:'
                  f'{version}"><BkToCstmrStmt><GrpHdr><MsgId>MSG{seed}</MsgId><CreDtTm>2026-12-01T23:00:00'
                  f'</CreDtTm></GrpHdr><Stmt><Id>STMT{seed}</Id><CreDtTm>2026-12-01T23:00:00</CreDtTm>'
                  f'<Acct><Id><Othr><Id>{RECEIVING}</Id></Othr></Id><Ccy>CNY</Ccy></Acct>\n')
        for code, fen in (("OPBD", opening), ("CLBD", closing)):
            out.write(f'<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">{_yuan(fen, ".")}'
                      f'</Amt><CdtDbtInd>{"CRDT" if fen >= 0 else "DBIT"}</CdtDbtInd><Dt><Dt>{START}</Dt></Dt>'
                      f'</Bal>\n')
        status = "<Sts><Cd>BOOK</Cd></Sts>" if v08 else "<Sts>BOOK</Sts>"
        for index, fen in _movements(lines, debit_every, seed):
            out.write(_entry(index, fen, status, v08, party))
        out.write("</Stmt></BkToCstmrStmt></Document>\n")
    return Expected(lines, credits, credit_total, debits, debit_total, opening, closing)


def _entry(index: int, fen: int, status: str, v08: bool, party=default_party) -> str:
    head = (f'<Ntry><NtryRef>N{index:012d}</NtryRef><Amt Ccy="CNY">{_yuan(fen, ".")}</Amt>'
            f'<CdtDbtInd>{"CRDT" if fen > 0 else "DBIT"}</CdtDbtInd>{status}'
            f'<BookgDt><Dt>{START}</Dt></BookgDt><ValDt><Dt>{START}</Dt></ValDt>'
            f'<AcctSvcrRef>B{index:012d}</AcctSvcrRef><BkTxCd><Prtry><Cd>TRF</Cd></Prtry></BkTxCd>')
    if fen < 0:
        return head + "</Ntry>\n"
    who = party(index)
    name = who.payer
    debtor = f"<Dbtr><Pty><Nm>{name}</Nm></Pty></Dbtr>" if v08 else f"<Dbtr><Nm>{name}</Nm></Dbtr>"
    bic = "BICFI" if v08 else "BIC"
    return (head + f"<NtryDtls><TxDtls><Refs><AcctSvcrRef>B{index:012d}</AcctSvcrRef></Refs>"
            f"<RltdPties>{debtor}<DbtrAcct><Id><Othr><Id>6222020200112233{index % 1000:03d}</Id></Othr></Id>"
            f"</DbtrAcct><CdtrAcct><Id><Othr><Id>{who.payee}</Id></Othr></Id></CdtrAcct>"
            f"</RltdPties><RltdAgts><DbtrAgt><FinInstnId><{bic}>ICBKCNBJSHI</{bic}></FinInstnId></DbtrAgt>"
            f"</RltdAgts><RmtInf><Ustrd>{who.memo}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>\n")
