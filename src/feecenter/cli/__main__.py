"""``python -m feecenter.cli``: the same program as the ``feecenter`` command."""

from feecenter.cli.main import main

main()
