"""hr-api: employees and departments from an HR system's JSON API, with a bearer token the
host holds (the plugin never sees it)."""

import roster_plugin as rp

INFO = rp.Info(
    "hr-api", "0.1.0", "Employees and departments from the HR API (bearer token)",
    keys=[
        rp.Key("url", rp.URL, "Base URL of the API, e.g. https://hr.example.com/api", required=True),
        rp.Key("token", rp.SECRET, "API token; held by the host", required=True),
    ],
    capabilities={"http": "reads /departments and /employees of the configured API"},
    credentials=[rp.Bearer("hr", "token")],
)


def listing(run):
    base = run.config["url"].rstrip("/")
    for d in rp.get_json(f"{base}/departments", credential="hr"):
        yield rp.Group(d["id"], name=d["name"], parent=d.get("parent"))
    page = f"{base}/employees"
    while page:
        body = rp.get_json(page, credential="hr")
        for e in body["items"]:
            yield rp.User(e["id"], username=e["login"], full_name=e["name"], email=e.get("email"),
                          active=e.get("active", True), member_of=[e["department"]])
        page = body.get("next")


Connector = rp.connector(INFO, listing)
