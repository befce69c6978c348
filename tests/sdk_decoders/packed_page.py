"""The Python SDK's decoder of packed LDAP pages (`unpack_page`), run natively with the
component's imports stubbed: pages decode to their entries, broken buffers raise BadDataError.
Run by tests/sdk_langs.rs; exits non-zero on a failure."""

import os
import struct
import sys
from unittest.mock import MagicMock

for m in ["componentize_py_types", "wit_world", "wit_world.exports", "wit_world.imports"]:
    sys.modules[m] = MagicMock()


class Err(Exception):
    pass


sys.modules["componentize_py_types"].Err = Err
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "sdk", "python"))
import roster_plugin as rp  # noqa: E402


def u32(n):
    return struct.pack("<I", n)


def s(b):
    return u32(len(b)) + b


page = (
    u32(2)
    + s(b"uid=ann,dc=t") + u32(2)
    + s(b"uid") + u32(1) + s(b"ann")
    + s(b"description") + u32(2) + s(b"first") + s(b"caf\xe9")
    + s("uid=zoë,dc=t".encode()) + u32(0)
)
got = rp.unpack_page(page)
want = [
    ("uid=ann,dc=t", {"uid": ["ann"], "description": ["first", "café"]}),
    ("uid=zoë,dc=t", {}),
]
assert got == want, got
assert rp.unpack_page(u32(0)) == []
broken = {
    "truncated": page[:-1],
    "1 bytes after the last entry": page + b"x",
    "a count exceeds the buffer": u32(1_000_000),
    "a value exceeds the buffer": u32(1) + u32(50) + b"uid",
    "a DN or name is not UTF-8": u32(1) + s(b"\xff") + u32(0),
}
for why, buf in broken.items():
    try:
        rp.unpack_page(buf)
    except rp.BadDataError as e:
        assert str(e) == f"packed LDAP page: {why}", e
    else:
        raise AssertionError(f"no error for {why}")
print("ok")
