"""``python -m vigil.agent.actions._responder_main``: the exec responder child (see ``_responder``).

A separate module so that running it does not re-execute a module the package already imported.
"""

import sys

from vigil.agent.actions._responder import main

if __name__ == "__main__":
    sys.exit(main())
