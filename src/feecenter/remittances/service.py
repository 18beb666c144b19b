"""Corporate-remittance use cases (RMT-1..8, ARR-4, BAL-5): receiving numbers,
importing bank statements, payer verification, operators' holds and assignments,
crediting, and the queries the console, REST and CLI adapters show.

Every function runs inside the caller's database transaction (``conn``; one
unit of work per call: ``with transaction(engine) as conn``) and never commits;
an error rolls the whole call back. Permissions are checked here: ``actor`` is
``accounts.permissions.Actor``; customers need FINANCE on the account,
operators' functions ``require_operator``. Settings (prefixes, banks, payee,
restricted keywords) come from ``Settings.from_env()`` unless passed.

Public API (docs/remittance.md):

Customers (FINANCE on ``uin``; operators too)
  receiving_details(conn, clock, actor, uin, settings=None) -> dict
      RMT-1/5: payee entity, bank, branch and the 25-digit number per prefix;
      allocates the account's code on first use (so it writes: use a transaction).
  list_remittances(conn, actor, uin, *, state=None, offset=0, limit=20) -> {"items", "total"}
  get_remittance(conn, actor, remittance_id) -> dict
      a customer (a user) gets records without the operators' labels: ``assigned`` and
      ``released`` (bool) instead of ``assigned_by`` / ``released_by`` (``as_seen_by``)
  register_payer(conn, clock, actor, uin, name) -> dict       RMT-4/5: signs the agreement
      (payer rows as a user sees them name an operator who signed or removed one by
      the kind only, "operator")
  remove_payer(conn, clock, actor, uin, payer_id) -> dict
  list_payers(conn, actor, uin, *, include_removed=False) -> list[dict]
  request_reverification(conn, clock, actor, uin, remittance_id) -> dict
      RMT-5: pending/review_failed -> credited, or review_failed with the reason.

Operators (require_operator; audited under the operator's name)
  import_transfers(conn, clock, operator, transfers, *, source, digest, settings=None,
                   batch_size=2000) -> ImportSummary       RMT-2/3: all or nothing
      ``transfers``: any iterable of Transfer (a parser's generator is streamed)
  assign(conn, clock, operator, remittance_id, uin) -> dict    unassigned/held -> the account
  release(conn, clock, operator, remittance_id) -> dict        held (CNY) -> verification
  operator_queue(conn, actor, queue, *, offset=0, limit=100) -> {"items", "total"}
      queue: unassigned | pending | held | review_failed | flagged | not_ours | legacy | refunded
  list_imports(conn, actor, *, offset=0, limit=50) -> list[dict]

Others
  pending_count(conn, uin) -> int       ACC-5: remittances of the account still in progress
  flag_overdue(conn, clock) -> int      RMT-2: the job flags unresolved records after 1 day

Errors: ``InvalidInput`` (a bad line or argument, naming the field), ``Conflict``
(a bank reference imported before with other content; a record no longer in the
state the action needs, ``details.state`` naming the state found), ``NotFound``,
``PermissionDenied``.

Money: a transfer to one of our prefixes in CNY is posted on arrival from the
platform's ``bank`` account to ``remittance_suspense``; crediting moves it from
suspense into the customer's cash through ``funds.receive`` (arrears, then
advances, each its own entry: ARR-4, RMT-8; an import does the same in bulk with
``funds.bulk.receive_many``). Every credit is claimed first: by
the INSERT that wins the (receiving account, bank reference) key on import, or by
a conditional UPDATE on the record's state whose row count decides.

A cancelled account (ACC-5) is never credited: a transfer to its number is held
with ``rules.ACCOUNT_CANCELLED_REASON`` (an operator refunds the payer, RMT-11),
and so is one assigned to it or re-verified; releasing one is refused. Each
credit locks the account's balance rows before it reads the account's state (the
cancellation's lock order): a credit first makes the cancellation find the cash;
a cancellation first makes the credit find the account cancelled.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass, field

from sqlalchemy import Connection, bindparam, func, insert, select, tuple_, update

from feecenter.accounts.permissions import (FINANCE, Actor, labels_seen_by, require,
                                            require_operator)
from feecenter.accounts.tables import customers
from feecenter.audit.service import record_audit
from feecenter.clock import Clock, db_time
from feecenter.db.upsert import insert_if_absent
from feecenter.errors import ConfigurationError, Conflict, invalid, not_found
from feecenter.funds import bulk
from feecenter.funds import service as funds
from feecenter.inputs import plain_text
from feecenter.ledger import service as ledger
from feecenter.money import format_yuan
from feecenter.notifications import service as notifications
from feecenter.remittances import rules
from feecenter.remittances.rules import (CNY, CREDITED, HELD, NOT_OURS, PENDING, REVIEW_FAILED,
                                         UNASSIGNED)
from feecenter.remittances.tables import (remittance_codes, remittance_imports,
                                          remittance_payers, remittances)
from feecenter.remittances.transfer import Transfer

_R = remittances.c
_P = remittance_payers.c
BANK_ACCOUNT = "bank"                        # platform: the money in the platform's bank accounts
SUSPENSE_ACCOUNT = "remittance_suspense"     # platform: received, not yet credited
MAX_LINES = 1_000_000                        # one import
INSERT_CHUNK = 100                           # rows per INSERT statement
IMPORT_BATCH = 2_000                         # lines held in memory and written at once
_IMPORT_LOCK = 0x52E3172                     # pg advisory lock: one statement import at a time
CODE_TRIES = 20                              # random codes tried before giving up
MAX_PAGE = 200
QUEUES = ("unassigned", "pending", "held", "review_failed", "flagged", "not_ours",
          "legacy", "refunded")  # the last two: remittances/cases.py
VERIFIED_REALNAME = ("personal", "enterprise")  # an entity name in these states is verified


# ---------------------------------------------------------------- settings

@dataclass(frozen=True)
class ReceivingBank:
    prefix: str   # the platform's 15-digit account
    bank: str
    branch: str


DEFAULT_BANKS = (ReceivingBank("755912345600001", "招商银行", "深圳分行营业部"),
                 ReceivingBank("110998765400002", "中国工商银行", "北京海淀支行"))
DEFAULT_PAYEE = "费用中心示例科技有限公司"


@dataclass(frozen=True)
class Settings:
    """Corporate remittance settings; ``from_env`` reads them:

    - FEECENTER_REMITTANCE_PAYEE: the payee entity name customers pay
      (default "费用中心示例科技有限公司", a demo name)
    - FEECENTER_REMITTANCE_PREFIXES: the platform's 15-digit accounts, comma-separated,
      at most two (default "755912345600001,110998765400002", demo numbers)
    - FEECENTER_REMITTANCE_BANKS: "bank|branch" of each prefix, in the same order,
      ";"-separated (default "招商银行|深圳分行营业部;中国工商银行|北京海淀支行")
    - FEECENTER_REMITTANCE_RESTRICTED_KEYWORDS: memo keywords that hold a transfer for
      an operator, comma-separated, added to 保证金 which is always restricted (RMT-6)
    """

    banks: tuple[ReceivingBank, ...] = DEFAULT_BANKS
    payee_entity: str = DEFAULT_PAYEE
    restricted_keywords: tuple[str, ...] = ("保证金",)

    def __post_init__(self):
        prefixes = [b.prefix for b in self.banks]
        if not 1 <= len(prefixes) <= 2 or len(set(prefixes)) != len(prefixes):
            raise ConfigurationError("汇款收款账号前缀须为 1–2 个不同的 15 位账号",
                                     "remittance prefixes: one or two different 15-digit accounts",
                                     field="FEECENTER_REMITTANCE_PREFIXES")
        for prefix in prefixes:
            try:
                rules.check_prefix(prefix)
            except ValueError as exc:
                raise ConfigurationError(f"汇款收款账号前缀无效：{prefix}", str(exc),
                                         field="FEECENTER_REMITTANCE_PREFIXES") from None

    @property
    def prefixes(self) -> tuple[str, ...]:
        return tuple(b.prefix for b in self.banks)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        prefixes = [p.strip() for p in (env.get("FEECENTER_REMITTANCE_PREFIXES") or "").split(",")
                    if p.strip()] or [b.prefix for b in DEFAULT_BANKS]
        named = [part.split("|", 1) for part in
                 (env.get("FEECENTER_REMITTANCE_BANKS") or "").split(";") if part.strip()]
        if named and (len(named) != len(prefixes) or any(len(n) != 2 for n in named)):
            raise ConfigurationError("FEECENTER_REMITTANCE_BANKS 须为每个前缀一项「银行|支行」",
                                     "FEECENTER_REMITTANCE_BANKS: one 'bank|branch' per prefix",
                                     field="FEECENTER_REMITTANCE_BANKS")
        if not named:
            named = [(b.bank, b.branch) for b in DEFAULT_BANKS][:len(prefixes)]
            named += [("", "")] * (len(prefixes) - len(named))
        extra = [k.strip() for k in (env.get("FEECENTER_REMITTANCE_RESTRICTED_KEYWORDS") or "")
                 .split(",") if k.strip()]
        return cls(banks=tuple(ReceivingBank(p, b.strip(), br.strip())
                               for p, (b, br) in zip(prefixes, named)),
                   payee_entity=(env.get("FEECENTER_REMITTANCE_PAYEE") or DEFAULT_PAYEE).strip(),
                   restricted_keywords=tuple(dict.fromkeys(["保证金", *extra])))


def _settings(settings: Settings | None) -> Settings:
    return settings if settings is not None else Settings.from_env()


# ---------------------------------------------------------------- receiving numbers (RMT-1, RMT-5)

def receiving_details(conn: Connection, clock: Clock, actor: Actor, uin: int,
                      settings: Settings | None = None) -> dict:
    """What the recharge page shows (RMT-5): ``payee_entity``, ``code`` and per
    prefix ``{"bank", "branch", "number"}`` (the 25-digit number) in ``accounts``."""
    require(actor, uin, FINANCE)
    cfg = _settings(settings)
    _require_account(conn, uin)
    code = _code_of(conn, clock, uin)
    return {"uin": uin, "payee_entity": cfg.payee_entity, "code": code,
            "accounts": [{"bank": b.bank, "branch": b.branch, "number": b.prefix + code}
                         for b in cfg.banks]}


def _code_of(conn: Connection, clock: Clock, uin: int) -> str:
    """The account's code, allocated on first use: a random 9-digit serial plus its
    Luhn digit, inserted unless the account or the code has one already (two first
    uses at once: the loser reads the winner's)."""
    find = select(remittance_codes.c.code).where(remittance_codes.c.uin == uin)
    for _ in range(CODE_TRIES):
        found = conn.execute(find).scalar()
        if found is not None:
            return found
        code = rules.code_from(secrets.randbelow(rules.CODE_SPACE))
        conn.execute(insert_if_absent(conn, remittance_codes).values(
            uin=uin, code=code, created_at=db_time(clock.now())))
    raise RuntimeError(f"no free remittance code after {CODE_TRIES} tries")  # 1e9 codes


def _require_account(conn: Connection, uin: int) -> None:
    if conn.execute(select(customers.c.uin).where(customers.c.uin == uin)).scalar() is None:
        raise not_found("uin", "账号", "account", uin)


# ---------------------------------------------------------------- importing (RMT-2, RMT-3)

@dataclass(frozen=True)
class ImportSummary:
    import_id: int
    lines: int
    credited: int = 0
    unassigned: int = 0
    pending: int = 0          # pending signature or confirmation
    held: int = 0
    not_ours: int = 0
    duplicates: int = 0       # imported before (same content): nothing changed
    new_fen: int = 0          # CNY of the new transfers (not-ours ones included)
    credited_fen: int = 0
    not_ours_references: tuple[str, ...] = field(default=())  # reported (RMT-3)


_COUNTED = {CREDITED: "credited", UNASSIGNED: "unassigned", rules.PENDING_SIGNATURE: "pending",
            rules.PENDING_CONFIRMATION: "pending", HELD: "held", NOT_OURS: "not_ours"}


def import_transfers(conn: Connection, clock: Clock, operator: Actor,
                     transfers: Iterable[Transfer], *, source: str, digest: str,
                     settings: Settings | None = None,
                     batch_size: int = IMPORT_BATCH) -> ImportSummary:
    """Record one remittance per transfer, match, verify and credit (RMT-2..8), in the
    caller's transaction: all or nothing.

    ``transfers`` is any iterable (a parser's generator streams: at most
    ``batch_size`` lines are held at once); a bad line, or an error the iterable
    raises (``StatementRefused``), aborts the call and the caller's rollback
    undoes every batch written before it.

    A transfer imported before (same receiving account and bank reference, same
    content) is a duplicate and changes nothing; the same key with other content
    raises ``Conflict`` naming the reference. Each batch is written in key order
    with set-based statements; on PostgreSQL imports take a transaction-scoped
    advisory lock first, so two overlapping imports run one after the other
    instead of deadlocking across batches, and each transfer is credited once
    (the INSERT that wins the key is the claim). Credits are made after every
    line is written, read back in (UIN, id) order a batch at a time and made
    with ``funds.bulk.receive_many`` (the balance rows' lock order).
    """
    require_operator(operator)
    cfg = _settings(settings)
    source = _short_text(source, "source", 40)
    digest = _short_text(digest, "digest", 64)
    if isinstance(transfers, (str, bytes, Mapping)) or not isinstance(transfers, Iterable):
        raise invalid("transfers", "导入的每一行须为一笔转账", "every line must be a Transfer")
    if isinstance(transfers, Sized) and len(transfers) > MAX_LINES:
        raise invalid("transfers", f"一次最多导入 {MAX_LINES} 行", f"at most {MAX_LINES} lines an import")
    if type(batch_size) is not int or not 1 <= batch_size <= bulk.MAX_ACCOUNTS:
        raise invalid("batch_size", f"批次大小须为 1–{bulk.MAX_ACCOUNTS}",
                      f"batch_size must be 1-{bulk.MAX_ACCOUNTS}")
    _one_import_at_a_time(conn)
    now = db_time(clock.now())
    import_id = conn.execute(insert(remittance_imports).values(
        source=source, digest=digest, operator=operator.label, imported_at=now,
        lines=0, credited=0, unassigned=0, pending=0, held=0, not_ours=0,
        duplicates=0, new_fen=0, credited_fen=0).returning(remittance_imports.c.id)).scalar_one()
    tally = _Tally(import_id)
    for batch in _batches(transfers, batch_size):
        _import_batch(conn, clock, cfg, batch, import_id, now, tally)
    tally.held_at_credit(_credit_import(conn, clock, import_id, batch_size))
    summary = tally.summary()
    _store_counts(conn, summary)
    record_audit(conn, clock, operator, "remittance_import", None,
                 {"import_id": import_id, "source": source, "digest": digest,
                  "lines": summary.lines, "duplicates": summary.duplicates})
    return summary


def _one_import_at_a_time(conn: Connection) -> None:
    """PostgreSQL: wait for any other import to commit (a transaction-scoped advisory
    lock). Batches are written in key order each, not across the file, so two
    overlapping imports could otherwise wait for each other's keys in a cycle.
    SQLite has one writer already."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_IMPORT_LOCK)))


def _batches(transfers: Iterable[Transfer], size: int) -> Iterator[list[Transfer]]:
    """The checked lines in lists of ``size``; refuses a non-Transfer, a bad line and
    more than MAX_LINES (when the last batch comes, not before: it streams)."""
    batch: list[Transfer] = []
    count = 0
    for transfer in transfers:
        if not isinstance(transfer, Transfer):
            raise invalid("transfers", "导入的每一行须为一笔转账", "every line must be a Transfer")
        count += 1
        if count > MAX_LINES:
            raise invalid("transfers", f"一次最多导入 {MAX_LINES} 行",
                          f"at most {MAX_LINES} lines an import")
        rules.check_transfer(transfer)
        batch.append(transfer)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Tally:
    """The import's counts, added up batch by batch (only not-ours references kept)."""

    def __init__(self, import_id: int):
        self.import_id = import_id
        self.lines = self.duplicates = self.new_fen = self.credited_fen = 0
        self.counts = {name: 0 for name in set(_COUNTED.values())}
        self.not_ours: list[str] = []

    def add(self, lines: int, fresh: list[dict], duplicates: int) -> None:
        self.lines += lines
        self.duplicates += duplicates
        for row in fresh:
            self.counts[_COUNTED[row["state"]]] += 1
            if row["currency"] == CNY:
                self.new_fen += row["amount"]
                self.credited_fen += row["amount"] if row["state"] == CREDITED else 0
            if row["state"] == NOT_OURS:
                self.not_ours.append(row["bank_reference"])

    def held_at_credit(self, moved: list[Mapping]) -> None:
        """Records decided credited or pending, then held because their account was
        found cancelled under the balance lock (a cancellation that committed
        between the decision and the credit)."""
        for row in moved:
            self.counts[_COUNTED[row["state"]]] -= 1
            self.counts["held"] += 1
            if row["state"] == CREDITED:
                self.credited_fen -= row["amount"]

    def summary(self) -> ImportSummary:
        return ImportSummary(self.import_id, self.lines, duplicates=self.duplicates,
                             **self.counts, new_fen=self.new_fen,
                             credited_fen=self.credited_fen,
                             not_ours_references=tuple(self.not_ours))


def _import_batch(conn: Connection, clock: Clock, cfg: Settings, batch: list[Transfer],
                  import_id: int, now, tally: _Tally) -> None:
    """Decide, record (one INSERT … ON CONFLICT DO NOTHING RETURNING per chunk), post
    the arrivals and tell the owners of pending ones, for one batch of lines. A key
    an earlier batch of this import wrote counts as imported before."""
    unique, repeated = _unique_by_key(batch)
    decisions = _decide_all(conn, unique, cfg)
    rows = [_row(t, d, import_id, now) for t, d in zip(unique, decisions)]
    new_ids = _insert_new(conn, rows, import_id)
    duplicates = repeated + _check_duplicates(conn, [r for r in rows if _key(r) not in new_ids])
    fresh = [{**r, "id": new_ids[_key(r)]} for r in rows if _key(r) in new_ids]
    _post_arrivals(conn, clock, fresh)
    notifications.notify_many(conn, clock, [_notice(r) for r in fresh if r["state"] in PENDING])
    tally.add(len(batch), fresh, duplicates)


def _credit_import(conn: Connection, clock: Clock, import_id: int,
                   batch_size: int) -> list[Mapping]:
    """Credit the import's credited records: one query in (UIN, id) order, streamed a
    batch at a time (a server-side cursor on PostgreSQL), each batch suspense -> cash,
    then arrears and advances repaid (funds.bulk.receive_many, as funds.receive one
    by one), then the records' ``txn_id`` set.

    The query also reads the import's pending records of known accounts. Under the
    batch's balance lock the accounts' state is read again (ACC-5): a record,
    credited or pending, of an account cancelled since its decision is held with
    ``rules.ACCOUNT_CANCELLED_REASON`` instead. Returns those records (their state
    before), so the import's counts follow."""
    result = conn.execute(  # statement options: Connection.execution_options would stick
        select(_R.id, _R.uin, _R.state, _R.amount, _R.bank_reference).where(
            _R.import_id == import_id, _R.uin.is_not(None),
            _R.state.in_((CREDITED, *PENDING))).order_by(_R.uin, _R.id)
        .execution_options(yield_per=batch_size))
    suspense = None
    held: list[Mapping] = []
    for rows in result.partitions():
        locked = bulk.lock_accounts(conn, {r.uin for r in rows})
        cancelled = _cancelled_among(conn, locked.ids)
        gone = [r for r in rows if r.uin in cancelled]
        if gone:
            conn.execute(update(remittances).where(_R.id.in_([r.id for r in gone])).values(
                state=HELD, reason=rules.ACCOUNT_CANCELLED_REASON, credited_at=None,
                updated_at=db_time(clock.now())))
            held += [r._mapping for r in gone]
        rows = [r for r in rows if r.state == CREDITED and r.uin not in cancelled]
        if not rows:
            continue
        suspense = suspense or _platform_accounts(conn, clock)[1]
        results = bulk.receive_many(conn, clock, locked, [bulk.ReceiveRequest(
            r.uin, r.amount, f"remittance:{r.id}", suspense, "recharge", rules.PAY_CHANNEL,
            rules.SUB_PAY_TYPE, r.bank_reference[:200],
            {"op": "remittance", "id": r.id, "amount": r.amount}) for r in rows])
        conn.execute(update(remittances).where(_R.id == bindparam("rid"))
                     .values(txn_id=bindparam("tid")),
                     [{"rid": r.id, "tid": res.txn_id} for r, res in zip(rows, results)])
    return held


def _cancelled_among(conn: Connection, uins: Iterable[int]) -> set[int]:
    """ACC-5: which of these accounts are cancelled (read after their balance lock)."""
    return set(conn.execute(select(customers.c.uin).where(
        customers.c.uin.in_(sorted(uins)), customers.c.status == "cancelled")).scalars())


def _short_text(value: object, name: str, limit: int) -> str:
    text = plain_text(value, name, limit).strip()
    if not text:
        raise invalid(name, f"缺少 {name}", f"{name} is missing")
    return text


def _unique_by_key(transfers: Sequence[Transfer]) -> tuple[list[Transfer], int]:
    """The transfers in key order, each key once; a key repeated within the import
    with the same content counts as a duplicate, with other content is a conflict."""
    by_key: dict[tuple[str, str], Transfer] = {}
    repeated = 0
    for transfer in transfers:
        key = rules.key_of(transfer)
        first = by_key.setdefault(key, transfer)
        if first is transfer:
            continue
        if rules.content_digest(first) != rules.content_digest(transfer):
            raise _reference_conflict(transfer.bank_reference, transfer.receiving_account)
        repeated += 1
    return [by_key[k] for k in sorted(by_key)], repeated


def _reference_conflict(reference: str, account: str) -> Conflict:
    return Conflict(f"银行流水号 {reference}（收款账号 {account}）已导入且内容不同，本次导入未执行",
                    f"bank reference {reference} (account {account}) was imported with other "
                    "content; nothing was imported", field="bank_reference",
                    bank_reference=reference, receiving_account=account)


def _decide_all(conn: Connection, unique: list[Transfer], cfg: Settings) -> list[rules.Decision]:
    """Each transfer's decision from the pure rules, with what they need loaded in sets."""
    payees = [rules.read_payee(t.payee_account, cfg.prefixes) for t in unique]
    uin_of = _uins_of_codes(conn, {p.code for p in payees if p.code})
    names = _account_payers(conn, set(uin_of.values()))
    decisions = []
    for transfer, payee in zip(unique, payees):
        uin = uin_of.get(payee.code) if payee.code else None
        hold = rules.hold_reason(transfer.currency, transfer.memo, cfg.restricted_keywords)
        decisions.append(rules.decide(payee, uin, hold, names.get(uin), transfer.payer_name))
    return decisions


def _uins_of_codes(conn: Connection, codes: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    ordered = sorted(codes)
    for start in range(0, len(ordered), INSERT_CHUNK):
        found.update(conn.execute(select(remittance_codes.c.code, remittance_codes.c.uin).where(
            remittance_codes.c.code.in_(ordered[start:start + INSERT_CHUNK]))).all())
    return found


def _account_payers(conn: Connection, uins: Iterable[int]) -> dict[int, rules.AccountPayers]:
    """Each account's verified entity name, registered (not removed) payer names, and
    whether it is cancelled (ACC-5)."""
    ordered = sorted(set(uins))
    result: dict[int, rules.AccountPayers] = {}
    for start in range(0, len(ordered), INSERT_CHUNK):
        chunk = ordered[start:start + INSERT_CHUNK]
        names: dict[int, set[str]] = {u: set() for u in chunk}
        for uin, normalized in conn.execute(select(_P.uin, _P.normalized).where(
                _P.uin.in_(chunk), _P.removed_at.is_(None))):
            names[uin].add(normalized)
        for uin, state, entity, status in conn.execute(select(
                customers.c.uin, customers.c.realname_state, customers.c.entity_name,
                customers.c.status).where(customers.c.uin.in_(chunk))):
            verified = entity if state in VERIFIED_REALNAME and entity else None
            result[uin] = rules.AccountPayers(verified, frozenset(names[uin]),
                                              cancelled=status == "cancelled")
    return result


def _row(t: Transfer, d: rules.Decision, import_id: int, now) -> dict:
    return {"receiving_account": t.receiving_account, "bank_reference": t.bank_reference,
            "content_digest": rules.content_digest(t), "import_id": import_id, "line": t.line,
            "payee_account": t.payee_account, "payer_name": t.payer_name,
            "payer_account": t.payer_account, "payer_bank": t.payer_bank, "amount": t.amount,
            "currency": t.currency, "memo": t.memo, "value_date": t.value_date, "uin": d.uin,
            "state": d.state, "reason": d.reason, "reviews": 0, "arrived_at": now,
            "flagged_at": None, "assigned_by": None, "released_by": None,
            "credited_at": now if d.state == CREDITED else None, "arrival_txn_id": None,
            "txn_id": None, "updated_at": now}


def _key(row: Mapping) -> tuple[str, str]:
    return row["receiving_account"], row["bank_reference"]


def _insert_new(conn: Connection, rows: list[dict], import_id: int) -> dict[tuple[str, str], int]:
    """Insert the rows (in key order) unless their key exists; the ids of those inserted.

    One plain executemany of ``INSERT … ON CONFLICT DO NOTHING`` (psycopg pipelines it
    as one prepared statement; a multi-row INSERT … RETURNING of 26 columns costs more
    to build than to run), then the ids read back: this import's rows above the
    highest id before it (imports run one at a time, so they are this batch's)."""
    if not rows:
        return {}
    before = conn.execute(select(func.max(_R.id))).scalar() or 0
    conn.execute(insert_if_absent(conn, remittances, [_R.receiving_account, _R.bank_reference]),
                 rows)
    return {(acc, ref): i for i, acc, ref in conn.execute(
        select(_R.id, _R.receiving_account, _R.bank_reference).where(
            _R.id > before, _R.import_id == import_id))}


def _check_duplicates(conn: Connection, rows: list[dict]) -> int:
    """Rows whose key was imported before: duplicates if the content is the same,
    else the whole import is refused."""
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = rows[start:start + INSERT_CHUNK]
        earlier = dict(((acc, ref), digest) for acc, ref, digest in conn.execute(
            select(_R.receiving_account, _R.bank_reference, _R.content_digest).where(
                tuple_(_R.receiving_account, _R.bank_reference).in_([_key(r) for r in chunk]))))
        for row in chunk:
            if earlier.get(_key(row)) != row["content_digest"]:
                raise _reference_conflict(row["bank_reference"], row["receiving_account"])
    return len(rows)


def _post_arrivals(conn: Connection, clock: Clock, fresh: list[dict]) -> None:
    """Ours and in CNY: bank -> remittance suspense, one transaction each, in one batch
    (foreign currency is not fen and stays out of the ledger; not-ours is not ours)."""
    arriving = [r for r in fresh if r["state"] != NOT_OURS and r["currency"] == CNY]
    if not arriving:
        return
    bank, suspense = _platform_accounts(conn, clock)
    results = ledger.transfer_batch(conn, clock, [ledger.Transfer(
        idempotency_key=f"remittance:{r['id']}:arrival", kind="remittance_arrival", uin=r["uin"],
        reference=f"remittance:{r['id']}", memo=r["bank_reference"][:200],
        postings=(ledger.Posting(bank, -r["amount"]), ledger.Posting(suspense, r["amount"])))
        for r in arriving])
    conn.execute(update(remittances).where(_R.id == bindparam("rid"))
                 .values(arrival_txn_id=bindparam("tid")),
                 [{"rid": r["id"], "tid": res.txn_id} for r, res in zip(arriving, results)])


def _platform_accounts(conn: Connection, clock: Clock) -> tuple[int, int]:
    return (funds.platform_account(conn, clock, BANK_ACCOUNT),
            funds.platform_account(conn, clock, SUSPENSE_ACCOUNT))


def _store_counts(conn: Connection, summary: ImportSummary) -> None:
    conn.execute(update(remittance_imports).where(
        remittance_imports.c.id == summary.import_id).values(
        lines=summary.lines, credited=summary.credited, unassigned=summary.unassigned, pending=summary.pending,
        held=summary.held, not_ours=summary.not_ours, duplicates=summary.duplicates,
        new_fen=summary.new_fen, credited_fen=summary.credited_fen))


# ---------------------------------------------------------------- crediting (RMT-8) and telling

def _credit(conn: Connection, clock: Clock, row: Mapping, suspense: int | None = None) -> None:
    """Credit a record this caller has claimed: suspense -> the customer's cash, then
    arrears and advances repaid as entries of their own (funds.receive, ARR-4)."""
    if suspense is None:
        suspense = _platform_accounts(conn, clock)[1]
    movement = funds.receive(
        conn, clock, row["uin"], row["amount"], key=f"remittance:{row['id']}",
        source_account_id=suspense, action_type="recharge", pay_channel=rules.PAY_CHANNEL,
        sub_type=rules.SUB_PAY_TYPE, memo=row["bank_reference"][:200],
        request={"op": "remittance", "id": row["id"], "amount": row["amount"]})
    conn.execute(update(remittances).where(_R.id == row["id"]).values(txn_id=movement.txn_id))


def _notify(conn: Connection, clock: Clock, row: Mapping) -> None:
    """Tell the owner a remittance waits for them (RMT-4) or failed review (RMT-5)."""
    notice = _notice(row)
    notifications.notify(conn, clock, notice.uin, notice.template, notice.params, key=notice.key)


def _notice(row: Mapping) -> notifications.Notice:
    failed = row["state"] == REVIEW_FAILED
    template = "remittance_review_failed" if failed else "remittance_pending"
    key = f"remittance:{row['id']}:" + (f"review_failed:{row['reviews']}" if failed else "pending")
    return notifications.Notice(row["uin"], template, {
        "amount": format_yuan(row["amount"]), "payer_name": row["payer_name"],
        "reference": row["bank_reference"], "state_zh": rules.STATE_NAMES[row["state"]][0],
        "state_en": rules.STATE_NAMES[row["state"]][1]}, key)


def _after_claim(conn: Connection, clock: Clock, row: Mapping) -> None:
    """What follows a claimed change of state: the credit, or the owner told."""
    if row["state"] == CREDITED:
        _credit(conn, clock, row)
    elif row["state"] in PENDING or row["state"] == REVIEW_FAILED:
        _notify(conn, clock, row)


def _not_in_state(row: Mapping | None, remittance_id: int, wanted: str) -> Conflict:
    state = row["state"] if row else None
    zh, en = rules.STATE_NAMES.get(state, (str(state), str(state)))
    return Conflict(f"汇款记录 {remittance_id} 当前为「{zh}」，不能{wanted}",
                    f"remittance {remittance_id} is {en}; it cannot be {_WANTED_EN[wanted]}",
                    field="remittance_id", state=state)


_WANTED_EN = {"重新审核": "re-verified", "分配": "assigned", "放行": "released"}


def _claim(conn: Connection, remittance_id: int, where: list, values: dict):
    """The conditional UPDATE whose row count decides (docs/architecture.md)."""
    return conn.execute(update(remittances).where(_R.id == remittance_id, *where)
                        .values(**values).returning(*remittances.c)).mappings().first()


def _load(conn: Connection, remittance_id: int) -> dict:
    row = conn.execute(select(remittances).where(_R.id == remittance_id)).mappings().first()
    if row is None:
        raise not_found("remittance_id", "汇款记录", "remittance", remittance_id)
    return dict(row)


def _moved_to(state: str, reason: str | None, now) -> dict:
    return {"state": state, "reason": reason, "updated_at": now,
            **({"credited_at": now} if state == CREDITED else {})}


# ---------------------------------------------------------------- the owner's side (RMT-4, RMT-5)

def register_payer(conn: Connection, clock: Clock, actor: Actor, uin: int, name: object) -> dict:
    """Register a payer name (the third-party payment agreement signed by ``actor``,
    now). Registering a name again (in any spacing or width) returns the existing
    one; a removed one is registered again."""
    require(actor, uin, FINANCE)
    _require_account(conn, uin)
    text = plain_text(name, "payer_name", 200).strip()
    normalized = rules.normalize_name(text)
    if not normalized or len(normalized) > 400:
        raise invalid("payer_name", "请填写付款人名称（不超过 200 个字符）",
                      "enter the payer's name (at most 200 characters)")
    now = db_time(clock.now())
    conn.execute(insert_if_absent(conn, remittance_payers, ["uin", "normalized"]).values(
        uin=uin, name=text, normalized=normalized, signed_by=actor.label, signed_at=now))
    conn.execute(update(remittance_payers).where(
        _P.uin == uin, _P.normalized == normalized, _P.removed_at.is_not(None)).values(
        name=text, signed_by=actor.label, signed_at=now, removed_by=None, removed_at=None))
    row = conn.execute(select(remittance_payers).where(
        _P.uin == uin, _P.normalized == normalized)).mappings().one()
    record_audit(conn, clock, actor, "remittance_payer_register", uin, {"name": text})
    return _payer_as_seen_by(actor, row)


def remove_payer(conn: Connection, clock: Clock, actor: Actor, uin: int, payer_id: int) -> dict:
    require(actor, uin, FINANCE)
    row = conn.execute(update(remittance_payers).where(
        _P.id == payer_id, _P.uin == uin, _P.removed_at.is_(None)).values(
        removed_by=actor.label, removed_at=db_time(clock.now()))
        .returning(*remittance_payers.c)).mappings().first()
    if row is None:
        raise not_found("payer_id", "付款人", "payer", payer_id)
    record_audit(conn, clock, actor, "remittance_payer_remove", uin, {"name": row["name"]})
    return _payer_as_seen_by(actor, row)


def list_payers(conn: Connection, actor: Actor, uin: int, *,
                include_removed: bool = False) -> list[dict]:
    require(actor, uin, FINANCE)
    stmt = select(remittance_payers).where(_P.uin == uin).order_by(_P.id)
    if not include_removed:
        stmt = stmt.where(_P.removed_at.is_(None))
    return [_payer_as_seen_by(actor, r) for r in conn.execute(stmt).mappings()]


def request_reverification(conn: Connection, clock: Clock, actor: Actor, uin: int,
                           remittance_id: int) -> dict:
    """RMT-5: check the bank-side payer again against the verified entity and the
    registered payers: credited, or review_failed with the reason (notified; it can
    be asked again after registering the right name). A cancelled account's record
    is held for an operator to refund instead (ACC-5). Returns the record."""
    require(actor, uin, FINANCE)
    record = _owned(conn, actor, uin, remittance_id)
    if record["state"] not in rules.REVERIFIABLE:
        raise _not_in_state(record, remittance_id, "重新审核")
    funds.lock_balances(conn, uin)  # ACC-5: before the account's state is read
    state, reason = rules.verify_account(record["payer_name"],
                                         _account_payers(conn, [uin])[uin])
    if state not in (CREDITED, HELD):
        state, reason = REVIEW_FAILED, rules.review_failed_reason(record["payer_name"])
    claimed = _claim(conn, remittance_id, [_R.uin == uin, _R.state.in_(rules.REVERIFIABLE)],
                     {**_moved_to(state, reason, db_time(clock.now())),
                      "reviews": _R.reviews + 1})
    if claimed is None:
        raise _not_in_state(_load(conn, remittance_id), remittance_id, "重新审核")
    _after_claim(conn, clock, claimed)
    return as_seen_by(actor, _load(conn, remittance_id))


def _owned(conn: Connection, actor: Actor, uin: int, remittance_id: int) -> dict:
    record = conn.execute(select(remittances).where(_R.id == remittance_id)).mappings().first()
    if record is None or record["uin"] != uin:  # another account's: as if absent
        raise not_found("remittance_id", "汇款记录", "remittance", remittance_id)
    return dict(record)


# ---------------------------------------------------------------- operators (RMT-3, RMT-6, RMT-7)

def assign(conn: Connection, clock: Clock, operator: Actor, remittance_id: int,
           uin: int) -> dict:
    """Give an unassigned record (or a held one nobody's yet) to account ``uin``: an
    unassigned one is then verified (credited, or pending and the owner told); a held
    one stays held for the operator. Given to a cancelled account (ACC-5), it is held
    with ``rules.ACCOUNT_CANCELLED_REASON``: an operator refunds the payer. Audited.
    Returns the record."""
    require_operator(operator)
    _require_account(conn, uin)
    record = _load(conn, remittance_id)
    if record["state"] not in (UNASSIGNED, HELD) or record["uin"] is not None:
        raise _not_in_state(record, remittance_id, "分配")
    funds.lock_balances(conn, uin)  # ACC-5: before the account's state is read
    account = _account_payers(conn, [uin])[uin]
    now = db_time(clock.now())
    if record["state"] == HELD and not account.cancelled:
        values = {"updated_at": now}
    else:
        values = _moved_to(*rules.verify_account(record["payer_name"], account), now)
    claimed = _claim(conn, remittance_id, [_R.state == record["state"], _R.uin.is_(None)],
                     {**values, "uin": uin, "assigned_by": operator.label})
    if claimed is None:
        raise _not_in_state(_load(conn, remittance_id), remittance_id, "分配")
    record_audit(conn, clock, operator, "remittance_assign", uin,
                 {"remittance_id": remittance_id, "bank_reference": record["bank_reference"],
                  "state": claimed["state"]})
    _after_claim(conn, clock, claimed)
    return _load(conn, remittance_id)


def release(conn: Connection, clock: Clock, operator: Actor, remittance_id: int) -> dict:
    """An operator lets a held CNY record of a known account through: the payer is
    verified as for any other (credited, or pending and the owner told). A foreign
    currency one, or one of a cancelled account (ACC-5), is never credited; it stays
    held for a refund (409). Audited."""
    require_operator(operator)
    record = _load(conn, remittance_id)
    if record["state"] != HELD:
        raise _not_in_state(record, remittance_id, "放行")
    if record["currency"] != CNY:
        raise Conflict(f"外币汇款（{record['currency']}）不能入账，只能退款",
                       f"a foreign-currency remittance ({record['currency']}) is never credited; "
                       "it can only be refunded", field="currency", state=HELD)
    if record["uin"] is None:
        raise Conflict("请先将汇款记录分配给账号", "assign the remittance to an account first",
                       field="uin", state=HELD)
    funds.lock_balances(conn, record["uin"])  # ACC-5: before the account's state is read
    account = _account_payers(conn, [record["uin"]])[record["uin"]]
    if account.cancelled:
        raise Conflict(f"账号 {record['uin']} 已注销，汇款不能入账，只能退款给付款人",
                       f"account {record['uin']} is cancelled: the remittance is never "
                       "credited; it can only be refunded to the payer", field="uin",
                       state=HELD)
    state, reason = rules.verify_payer(record["payer_name"], account)
    claimed = _claim(conn, remittance_id, [_R.state == HELD, _R.uin == record["uin"]],
                     {**_moved_to(state, reason, db_time(clock.now())),
                      "released_by": operator.label})
    if claimed is None:
        raise _not_in_state(_load(conn, remittance_id), remittance_id, "放行")
    record_audit(conn, clock, operator, "remittance_release", record["uin"],
                 {"remittance_id": remittance_id, "bank_reference": record["bank_reference"],
                  "state": claimed["state"]})
    _after_claim(conn, clock, claimed)
    return _load(conn, remittance_id)


# ---------------------------------------------------------------- reading

def _page(offset: object, limit: object) -> tuple[int, int]:
    if type(offset) is not int or offset < 0:
        raise invalid("offset", "offset 须为非负整数", "offset must be a non-negative integer")
    if type(limit) is not int or not 1 <= limit <= MAX_PAGE:
        raise invalid("limit", f"limit 须为 1–{MAX_PAGE}", f"limit must be 1-{MAX_PAGE}")
    return offset, limit


def list_remittances(conn: Connection, actor: Actor, uin: int, *, state: str | None = None,
                     offset: int = 0, limit: int = 20) -> dict:
    """The account's remittances, newest first, with state and reason."""
    require(actor, uin, FINANCE)
    offset, limit = _page(offset, limit)
    if state is not None and state not in rules.STATES:
        raise invalid("state", f"未知的汇款状态：{state}", f"unknown remittance state: {state}",
                      allowed=list(rules.STATES))
    where = [_R.uin == uin] + ([_R.state == state] if state else [])
    total = conn.execute(select(func.count()).select_from(remittances).where(*where)).scalar_one()
    rows = conn.execute(select(remittances).where(*where).order_by(_R.id.desc())
                        .offset(offset).limit(limit)).mappings()
    return {"items": [as_seen_by(actor, r) for r in rows], "total": total}


def get_remittance(conn: Connection, actor: Actor, remittance_id: int) -> dict:
    record = _load(conn, remittance_id)
    if actor.kind == "user" and actor.uin != record["uin"]:  # no probing ids
        raise not_found("remittance_id", "汇款记录", "remittance", remittance_id)
    if record["uin"] is None:
        require_operator(actor)
    else:
        require(actor, record["uin"], FINANCE)
    return as_seen_by(actor, record)


OPERATOR_LABELS = {"assigned_by": "assigned", "released_by": "released"}


def as_seen_by(actor: Actor, record: Mapping) -> dict:
    """A record as ``actor`` may see it: operators and the system see who assigned or
    released it; a customer (a user) sees only that it was (``assigned``,
    ``released``: bool), never an operator's name."""
    row = dict(record)
    if actor.kind == "user":
        for label, done in OPERATOR_LABELS.items():
            row[done] = row.pop(label, None) is not None
    return row


def _payer_as_seen_by(actor: Actor, row: Mapping) -> dict:
    """A payer row as ``actor`` may see it: to a user, an operator (or the system) who
    signed or removed it is named by its kind only."""
    return labels_seen_by(actor, row, ("signed_by", "removed_by"))


def _queue_filter(queue: str) -> list:
    if queue == "pending":
        return [_R.state.in_(PENDING)]
    if queue == "flagged":
        return [_R.state.in_(rules.UNRESOLVED), _R.flagged_at.is_not(None)]
    return [_R.state == queue]


def operator_queue(conn: Connection, actor: Actor, queue: str, *, offset: int = 0,
                   limit: int = 100) -> dict:
    """An operators' queue across accounts, oldest first (``flagged_at`` shows the
    RMT-2 flag): unassigned, pending (signature or confirmation), held,
    review_failed, flagged (any unresolved record flagged), not_ours."""
    require_operator(actor)
    offset, limit = _page(offset, limit)
    if queue not in QUEUES:
        raise invalid("queue", f"未知的队列：{queue}", f"unknown queue: {queue}",
                      allowed=list(QUEUES))
    where = _queue_filter(queue)
    total = conn.execute(select(func.count()).select_from(remittances).where(*where)).scalar_one()
    rows = conn.execute(select(remittances).where(*where).order_by(_R.arrived_at, _R.id)
                        .offset(offset).limit(limit)).mappings()
    return {"items": [dict(r) for r in rows], "total": total}


def list_imports(conn: Connection, actor: Actor, *, offset: int = 0, limit: int = 50) -> list[dict]:
    """Statement imports, newest first."""
    require_operator(actor)
    offset, limit = _page(offset, limit)
    return [dict(r) for r in conn.execute(select(remittance_imports).order_by(
        remittance_imports.c.id.desc()).offset(offset).limit(limit)).mappings()]


def pending_count(conn: Connection, uin: int) -> int:
    """ACC-5: the account's remittances still in progress (pending signature,
    confirmation or review, or held by an operator)."""
    return conn.execute(select(func.count()).select_from(remittances).where(
        _R.uin == uin, _R.state.in_(rules.IN_PROGRESS))).scalar_one()


def in_progress(conn: Connection, uin: int) -> list[dict]:
    """ACC-5: the account's remittances still in progress, oldest first, each
    ``{"id", "state", "amount", "currency", "bank_reference", "arrived_at"}``."""
    rows = conn.execute(select(_R.id, _R.state, _R.amount, _R.currency, _R.bank_reference,
                               _R.arrived_at).where(_R.uin == uin, _R.state.in_(rules.IN_PROGRESS))
                        .order_by(_R.id)).mappings()
    return [dict(r) for r in rows]


# ---------------------------------------------------------------- the job (RMT-2)

def flag_overdue(conn: Connection, clock: Clock) -> int:
    """Flag every record still unresolved ``FLAG_AFTER`` (1 day) after it arrived;
    returns how many were flagged now (a rerun flags none again)."""
    now = clock.now()
    return conn.execute(update(remittances).where(
        _R.state.in_(rules.UNRESOLVED), _R.flagged_at.is_(None),
        _R.arrived_at <= db_time(now - rules.FLAG_AFTER)).values(flagged_at=db_time(now))).rowcount


__all__ = ["ImportSummary", "QUEUES", "ReceivingBank", "Settings", "assign",
           "as_seen_by", "flag_overdue", "get_remittance", "import_transfers", "list_imports", "list_payers",
           "list_remittances", "operator_queue", "pending_count", "receiving_details",
           "register_payer", "release", "remove_payer", "request_reverification"]
