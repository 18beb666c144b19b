"""Corporate remittance (RMT-1..11): dedicated 25-digit receiving numbers, bank
statements (MT940, camt.053) and pushed transfers matched to accounts, payer
verification, claims, legacy forms and refunds to the payer.

``transfer`` holds the one record every statement format is parsed into;
``statements`` the parsers; ``rules`` the pure matching and verification
rules; ``service`` the use cases ([docs/remittance.md]).
"""
