"""Invoices (INV-1..9): what a customer may invoice, and the invoices issued for it.

- ``tables``: titles, invoice emails, the account's invoice settings, applications,
  invoices and their lines, the number counters, reversals and verification attempts.
- ``rules``: pure rules — the tax split of a tax-inclusive amount (one rounding,
  half-up), splitting an application into invoices and lines, numbers, check codes.
- ``titles``: the one title per account (INV-3) and the invoice emails (INV-5).
- ``invoiceable``: how much an account can invoice and why, with its parts, and the
  invoice debt (欠票) that blocks withdrawal (INV-1, INV-7).
- ``service``: applying (INV-2, INV-4), reading invoices.
- ``issuing``: the issuing job, applied -> issuing -> issued, numbered once (INV-5).
- ``reversals``: 退票 and the red invoice (INV-6); ``verification``: public checks (INV-8).
- ``requests``: the paper-copy and commercial-invoice service-request kinds (SRV-1, INV-9).
- ``documents``: the PDF and XML of an issued invoice; ``delivery``: the email.

docs/invoices.md.
"""
