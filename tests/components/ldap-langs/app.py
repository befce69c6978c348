"""ldap-python: people from the source's LDAP connection through the SDK's ldap_search
(packed pages); the SDK test (tests/sdk_langs.rs) runs it against slapd. A user per entry
with a uid (`notes` = the JSON of the attributes ldap_search yielded), a failed entry per
entry without one; a search that matches nothing must yield nothing."""

import json

import roster_plugin as rp

ATTRIBUTES = ["uid", "cn", "sn", "mail", "description", "jpegPhoto", "userPassword"]

INFO = rp.Info(
    "ldap-python", "0.1.0", "People through the SDK's ldap_search",
    keys=[
        rp.Key("count", rp.INTEGER, "LDAP page size", default="2"),
        rp.Key("url", rp.LIST, "LDAP URLs"),
        rp.Key("bind_dn", rp.STRING, "Bind DN"),
        rp.Key("password", rp.SECRET, "Bind password"),
        rp.Key("base_dn", rp.LIST, "Base DNs"),
    ],
    capabilities={"ldap": "searches the source's directory"},
)


def listing(run):
    size = int(run.config["count"])
    nothing = list(rp.ldap_search("(uid=nobody-by-that-name)", ["uid"], page_size=size))
    if nothing:
        raise rp.BadDataError(f"a search that matches nothing yielded {nothing!r}")
    for dn, attrs in rp.ldap_search("(objectClass=inetOrgPerson)", ATTRIBUTES, page_size=size):
        uid = next((v for k, v in attrs.items() if k.lower() == "uid"), None)
        if not uid:
            yield rp.Failed(dn, "no uid")
            continue
        yield rp.User(dn, username=uid[0], notes=json.dumps(attrs, sort_keys=True))


Connector = rp.connector(INFO, listing)
