"""`python -m nasedu`: the `nasedu` command."""
import sys

from .cli import main

sys.exit(main())
