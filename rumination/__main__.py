"""`python -m rumination` is the `rumination` command."""

from rumination.cli import main

main()
