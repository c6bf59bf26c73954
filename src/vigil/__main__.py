import sys

from vigil.cli import entry

sys.exit(entry())
