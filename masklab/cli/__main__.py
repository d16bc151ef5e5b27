"""``python -m masklab.cli``."""

from masklab.cli import main

main()
