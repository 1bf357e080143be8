"""``python -m rnninspect``."""

from .cli import main

main()
