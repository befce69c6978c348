"""ldap-python: people read through the host's LDAP connection with the SDK's ldap_search
(pages cross as one buffer each); the SDK test (tests/sdk_langs.rs) runs it against slapd."""

import roster_plugin as rp

INFO = rp.Info(
    "ldap-python", "0.1.0", "People through the host's LDAP connection",
    keys=[
        rp.Key("url", rp.URL, "The directory", required=True),
        rp.Key("base_dn", rp.STRING, "Where people are", required=True),
        rp.Key("bind_dn", rp.STRING, "Who reads"),
        rp.Key("password", rp.SECRET, "Their password"),
    ],
    capabilities={"ldap": "reads people"},
)


def listing(run):
    # Two entries a page: several pages, each decoded from its buffer.
    for dn, a in rp.ldap_search("(objectClass=inetOrgPerson)", ["uid", "cn", "mail", "description"], page_size=2):
        yield rp.User(
            dn,
            username=a["uid"][0],
            full_name=a.get("cn", [None])[0],
            email=a.get("mail", [None])[0],
            aliases=a.get("description", []),
        )


Connector = rp.connector(INFO, listing)
