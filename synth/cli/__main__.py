"""`python -m synth.cli ...` is the `synth` command."""

import sys

from synth.cli import main

sys.exit(main())
