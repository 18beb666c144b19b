"""Renderings shared by the adapters that show data: the native REST API (``api/``),
the operator CLI (``cli/``) and the web console.

A renderer turns what a service returns into plain JSON values, the same
shape whichever adapter prints it: fen as yuan strings ("12.30"), rated
amounts (1e-8 yuan) as 8-decimal strings, stored UTC times as business time
in Asia/Shanghai ("2026-01-31 23:00:00"). No database, no I/O, no HTTP;
adapters import their renderers from here, never from each other.

- ``text``: the value strings: ``with_yuan`` (fen fields as yuan), ``rated``, ``time_text``.
- ``funds``: balances, 收支明细 entries, movements.
- ``orders``: prepaid orders; ``resources``: resources.
- ``catalog``: products, billing items, price lists, quotes.
- ``bills``: postpaid L3 bill lines.
"""
