"""Unit tests of the Python SDK's pure parts (sdk/python/roster_plugin.py), outside a
component: the host's modules (wit_world, componentize_py_types) are stubbed.

    python3 -m unittest discover -s tests/sdk-unit -p 'test_*.py'

tests/sdk_langs.rs runs them; the end-to-end LDAP test there runs the same code in a component.
"""

import os
import struct
import sys
import types
import unittest


class _Stub(type):
    """A class whose every attribute is another stub class: enough for the module's
    import-time uses of the bindings (base classes, enum members, error cases)."""

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Stub(name, (), {})


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Stub(name, (), {})


class Err(Exception):
    def __init__(self, value):
        super().__init__(value)
        self.value = value


def _install_stubs():
    cpt = types.ModuleType("componentize_py_types")
    cpt.Err = Err
    sys.modules["componentize_py_types"] = cpt
    for name in [
        "wit_world",
        "wit_world.exports",
        "wit_world.exports.connector",
        "wit_world.imports",
        "wit_world.imports.files",
        "wit_world.imports.http",
        "wit_world.imports.ldap",
        "wit_world.imports.log",
        "wit_world.imports.types",
    ]:
        sys.modules[name] = _StubModule(name)
    for name in list(sys.modules):
        if name.startswith("wit_world."):
            parent, _, child = name.rpartition(".")
            setattr(sys.modules[parent], child, sys.modules[name])


_install_stubs()
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "sdk", "python"))
import roster_plugin as rp  # noqa: E402


def packed(entries):
    """The layout written out by hand, as wit/host.wit documents it."""
    out = bytearray()

    def put(b):
        out.extend(struct.pack("<I", len(b)))
        out.extend(b)

    out.extend(struct.pack("<I", len(entries)))
    for dn, attrs in entries:
        put(dn.encode())
        out.extend(struct.pack("<I", len(attrs)))
        for name, values in attrs:
            put(name.encode())
            out.extend(struct.pack("<I", len(values)))
            for v in values:
                put(v)
    return bytes(out)


PHOTO = b"\xff\xd8\x00\x80"
PAGE = [
    (
        "uid=ann,dc=example",
        [("uid", [b"ann"]), ("cn", ["Änn".encode(), b"Ann"]), ("jpegPhoto", [PHOTO, b""])],
    ),
    ("cn=empty", []),
]


class UnpackTest(unittest.TestCase):
    def test_a_packed_page_decodes_to_its_entries(self):
        page = rp.unpack_ldap_page(packed(PAGE))
        self.assertEqual(
            page,
            [
                (
                    "uid=ann,dc=example",
                    {"uid": ["ann"], "cn": ["Änn", "Ann"], "jpegPhoto": [PHOTO.decode("latin-1"), ""]},
                ),
                ("cn=empty", {}),
            ],
        )
        self.assertEqual(rp.unpack_ldap_page(packed([])), [])
        # Any buffer type the bindings might hand over.
        self.assertEqual(rp.unpack_ldap_page(bytearray(packed(PAGE))), page)
        self.assertEqual(rp.unpack_ldap_page(memoryview(packed(PAGE))), page)

    def assertBroken(self, buf, what=""):
        with self.assertRaises(rp.BadDataError) as cm:
            rp.unpack_ldap_page(buf)
        self.assertIn("packed LDAP page", str(cm.exception))
        self.assertIn(what, str(cm.exception))

    def test_a_broken_packed_page_is_bad_data(self):
        buf = packed([("uid=ann", [("uid", [b"ann"])])])
        for cut in range(len(buf)):
            with self.subTest(cut=cut):
                self.assertBroken(buf[:cut])
        self.assertBroken(buf + b"\x00", "1 bytes after the last entry")
        # A count no buffer backs is refused before anything is built.
        self.assertBroken(struct.pack("<I", 0xFFFFFFFF), "count exceeds")
        self.assertBroken(packed([("a", [])])[:4] + struct.pack("<I", 99) + b"a" + b"\0" * 4, "value exceeds")
        bad = bytearray(packed([("\0", [])]))
        bad[8] = 0xFF
        self.assertBroken(bytes(bad), "UTF-8")
        bad = bytearray(packed([("a", [("\0", [])])]))
        bad[17] = 0xFF
        self.assertBroken(bytes(bad), "UTF-8")


class _Search:
    def __init__(self, pages):
        self.pages = list(pages)

    def next_page_packed(self):
        page = self.pages.pop(0)
        if isinstance(page, Exception):
            raise page
        return page

    def next_page(self):
        raise AssertionError("the SDK reads packed pages")


class SearchTest(unittest.TestCase):
    def run_search(self, pages):
        ldap = rp._ldap
        search = _Search(pages)
        conn = types.SimpleNamespace(search=lambda req: search)
        ldap.connect = lambda: conn
        ldap.Scope = {"SUBTREE": "subtree"}
        ldap.SearchRequest = lambda *fields: fields
        return list(rp.ldap_search("(uid=*)", ["uid"]))

    def test_ldap_search_reads_every_packed_page(self):
        got = self.run_search([packed(PAGE), packed([]), packed(PAGE[:1]), None])
        self.assertEqual([dn for dn, _ in got], ["uid=ann,dc=example", "cn=empty", "uid=ann,dc=example"])
        self.assertEqual(got[0][1]["cn"], ["Änn", "Ann"])

    def test_a_broken_page_is_bad_data_and_host_errors_keep_their_mapping(self):
        with self.assertRaises(rp.BadDataError) as cm:
            self.run_search([packed(PAGE)[:-1]])
        self.assertIn("packed LDAP page", str(cm.exception))
        ldap = rp._ldap
        for case, kind in [
            ("LdapError_InvalidCredentials", rp.AuthenticationError),
            ("LdapError_NoSuchBase", rp.ConfigError),
            ("LdapError_Denied", rp.ConfigError),
            ("LdapError_Unreachable", rp.UnavailableError),
        ]:
            cls = type(case, (), {"__init__": lambda self, v: setattr(self, "value", v)})
            setattr(ldap, case, cls)
            with self.subTest(case=case), self.assertRaises(kind) as cm:
                self.run_search([Err(cls("the host's message"))])
            self.assertEqual(str(cm.exception), "the host's message")


if __name__ == "__main__":
    unittest.main()
