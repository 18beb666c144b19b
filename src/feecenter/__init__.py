"""Fee Center: the billing and expense center of a cloud platform.

The package is laid out by architecture: a small shared kernel (money, clock,
periods, workdays, errors, inputs, config, runtime), ``db`` for storage, one
package per domain (``ledger``, ``accounts``, ``funds``, ``orders``,
``settlement``, …), ``present`` for shared renderings and thin adapters
(``api``, ``compat``, ``cli``) that call the domain services. See
docs/architecture.md.
"""

__version__ = "0.1.0"
