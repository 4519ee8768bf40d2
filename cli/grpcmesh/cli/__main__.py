"""``python -m grpcmesh.cli ...``: the ``grpcmesh`` command without the console script."""

import sys

from grpcmesh.cli.main import main

sys.exit(main())
