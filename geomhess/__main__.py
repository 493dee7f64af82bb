"""`python -m geomhess`: the invariance demo (see `geomhess._demo`)."""

import sys

from ._demo import main


if __name__ == "__main__":
    sys.exit(main())
