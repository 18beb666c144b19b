"""Postpaid settlement: rating, deduction, L3 bill lines, precision difference (SET-1..9)."""
