"""The operator CLI (``feecenter``, Typer + Rich), the demo and the signed REST client.

- ``main``: the Typer app, its wiring and the account, key, money and running
  commands; ``main.main`` is the ``feecenter`` entry point (``python -m
  feecenter.cli`` runs it too).
- ``bills``, ``catalog``, ``jobs``, ``orders``, ``usage``: the sub-command groups.
- ``common``: what every command shares (consoles, ``--json``, flags, refusals,
  the runtime).
- ``demo``: ``feecenter demo``'s sample world; ``client``: a stdlib signed client
  for the native REST API.

An adapter: a command parses, calls one service function and
renders with ``feecenter.present``. Nothing here imports ``feecenter.api``
except ``main.serve_app``, the composition root that builds the ASGI app. A
command imports what it uses inside its function, so ``feecenter --help``
loads only Typer and Rich (docs/cli.md).
"""
