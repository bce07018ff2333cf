"""course_utils: what the notebooks build and later notebooks reuse, one module per idea.

Import this package before torch. On a shared 2-core machine, OpenMP's busy-waiting
threads made training 5x slower whenever another process held a core; a passive
wait policy fixes that, and it only takes effect if set before torch loads.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
