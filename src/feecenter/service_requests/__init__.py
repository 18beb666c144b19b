"""Service requests (工单, SRV-1..2): customers file typed billing requests, operators
work them from a queue; each kind (kinds.py) brings its fields, attachment rules, due
time in working days and the action resolving it runs (docs/service-requests.md)."""
