"""`python -m learners.study --spec ...`: the study runner (see runner.py)."""

import sys

from learners.study import runner

sys.exit(runner.main())
