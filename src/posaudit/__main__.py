"""``python -m posaudit``: the command line."""

from posaudit.cli import main

main()
