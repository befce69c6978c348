"""sa-python: users of a Directory API (users.list) read with a service-account credential
the host holds; the SDK test (tests/sdk_langs.rs) runs it against the Google emulator."""

import roster_plugin as rp

SCOPE = "https://www.googleapis.com/auth/admin.directory.user.readonly"

INFO = rp.Info(
    "sa-python", "0.1.0", "Users through a host-held service account",
    keys=[
        rp.Key("key_file", rp.SECRET, "The service account's JSON key file", required=True),
        rp.Key("subject", rp.STRING, "The admin to act for", required=True),
        rp.Key("api_url", rp.URL, "The Directory API's base URL", required=True),
    ],
    capabilities={"http": "reads users.list"},
    credentials=[rp.ServiceAccount("directory", "key_file", "{subject}", SCOPE)],
)


def listing(run):
    base = run.config["api_url"].rstrip("/") + "/admin/directory/v1/users?customer=my_customer"
    token = ""
    while True:
        body = rp.get_json(base + token, credential="directory")
        for u in body.get("users", []):
            yield rp.User(u["id"], username=u["primaryEmail"], email=u["primaryEmail"])
        if not body.get("nextPageToken"):
            break
        token = "&pageToken=" + body["nextPageToken"]


Connector = rp.connector(INFO, listing)
