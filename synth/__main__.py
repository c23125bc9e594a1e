"""`python -m synth ...` is the `synth` command."""

import sys

from .cli import main

sys.exit(main())
