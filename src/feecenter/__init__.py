"""Fee Center: the billing and expense center of a cloud platform.

The package is laid out by architecture: a tiny shared kernel (money, clock,
errors, config, workdays), ``db`` for storage, one package per domain
(``ledger``, ``accounts``, ``funds``, ``auth``) and thin adapters (``api``,
``compat``, ``cli``) that call the domain services. See docs/architecture.md.
"""

__version__ = "0.1.0"
