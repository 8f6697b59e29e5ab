"""Several racedash processes behind one URL, on Redis (docs/scaling.md).

Nothing here runs without ``redis_url``: the embedded single process stays the default.
"""

from racedash.cluster.node import Cluster, client_manager, make_cluster

__all__ = ["Cluster", "client_manager", "make_cluster"]
