"""Resource packages (资源包, SET-10): prepaid packages that cover matching postpaid usage.

- ``rules``: pure — which package covers how much of a period's usage.
- ``service``: packages in force for settlement, and the trace of every covered quantity.
- ``tables``: ``package_uses``.
"""
