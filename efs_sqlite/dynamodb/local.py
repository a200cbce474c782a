"""The local default: an in-process moto server on 127.0.0.1, started for you, so the DynamoDB
backend runs (in ``make demo``, the notebooks, the tests) with no AWS account.

One server per process, started on first use and stopped when the process exits. It speaks
DynamoDB's wire protocol, so :class:`~efs_sqlite.dynamodb.store.DynamoStore` sends it exactly the
calls it would send AWS; its answers' ``ConsumedCapacity`` are fixed figures and never used (the
store computes capacity itself).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import Any

from efs_sqlite.dynamodb.store import DynamoStore, make_client

__all__ = ["LOCAL_REGION", "local_endpoint", "local_store"]

#: The region the local server's clients sign for (moto accepts any).
LOCAL_REGION = "us-east-1"

_lock = threading.Lock()
_url: str | None = None


def local_endpoint() -> str:
    """The URL of this process's moto server, started now if it is not running yet."""
    global _url
    with _lock:
        if _url is None:
            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
            # moto keeps one set of backends per process, and makes IAM's (with or without AWS's
            # managed policies, by this setting) at the first request of any service: a deploy
            # tested on another in-process server (efs_sqlite.aws.fakes) attaches such a policy.
            os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            atexit.register(server.stop)
            host, port = server.get_host_and_port()
            _url = f"http://{host}:{port}"
        return _url


def local_store(table: str = "efs-sqlite", **options: Any) -> DynamoStore:
    """A :class:`DynamoStore` on ``table`` of the local server, the table created if missing.

    >>> store = local_store("doctest-local")
    >>> store.insert("claim_type_code", 1, "MOTOR")
    >>> store.get("claim_type_code", 1)
    'MOTOR'
    >>> store.close()
    """
    client = make_client(local_endpoint(), LOCAL_REGION, credentials=("local", "local"))
    return DynamoStore(table, client=client, create=True, **options)
