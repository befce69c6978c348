"""Runs the third-party SCIM compliance suite scim2-tester against a roster serve.

Usage: scim_tester.py URL TOKEN. Prints one JSON line per check: title, status, reason.
"""

import json
import sys

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import check_server

url, token = sys.argv[1], sys.argv[2]
http = httpx2.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
for r in check_server(SyncSCIMClient(http), resource_types=["User", "Group"]):
    print(json.dumps({"title": r.title, "status": r.status.name, "reason": r.reason or ""}))
