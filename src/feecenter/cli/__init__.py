"""The operator CLI (``feecenter``, Typer + Rich), the demo and the signed REST client.

- ``main``: the Typer app, its wiring and the account, key, money and running
  commands; ``main.main`` is the ``feecenter`` entry point.
- ``bills``, ``catalog``, ``jobs``, ``orders``, ``usage``: the sub-command groups.
- ``common``: what every command shares (consoles, ``--json``, refusals, runtime).
- ``demo``: ``feecenter demo``'s sample world; ``client``: a stdlib signed client
  for the native REST API.
"""
