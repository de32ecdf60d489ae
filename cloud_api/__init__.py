"""`storesight-cloud`: the multi-store HTTP service, its database and its administration.

Set before anything imports numpy: one BLAS thread per process. A request's matrix products
are small (a partition's unindexed buffer against one descriptor) and many requests run at
once on the API's threads and workers; OpenBLAS's own thread pool would only busy-wait for
work (`sched_yield`), measured at about a third of an API process's CPU under load
(`bench/cloud_load.py`). A value the operator set is kept.
"""

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
