"""`python -m synth.cli ...` is the `synth` command."""

import sys

from . import main

sys.exit(main())
