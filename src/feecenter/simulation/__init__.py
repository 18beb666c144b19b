"""The deterministic simulation of a small cloud (issue #19, docs/simulation.md).

A driver, like an adapter: it calls domain services the way the tests do and
no adapter imports it. ``world`` generates the cloud from a seed, ``ops`` the
operations, ``model`` keeps what the rules say the product must hold,
``checks`` compares, ``state`` hashes the final state, ``faults`` kills a real
child process inside a unit of work, ``driver`` runs it all, ``shrink`` finds a
smaller failing run.
"""
