import sys

from autoevol_dspy.cli.main import main

sys.exit(main())
