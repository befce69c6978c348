"""{{name}}: people and groups from a custom directory, a text file of one person a line:
`id; username; full name; email; group, group`."""

import roster_plugin as rp

INFO = rp.Info(
    "{{name}}", "0.1.0", "People and groups from a text file",
    keys=[rp.Key("path", rp.FILE, "id; username; full name; email; groups", required=True)],
    capabilities={"files": "reads the directory file at `path`"},
)


def listing(run):
    groups = set()
    for line in rp.read_lines(run.config["path"]):
        fields = [f.strip() for f in line.split(";")]
        if not line.strip():
            continue
        if len(fields) != 5:
            yield rp.Failed(line, "expected 5 fields separated by ;")
            continue
        uid, username, full_name, email, names = fields
        member_of = [g.strip() for g in names.split(",") if g.strip()]
        groups.update(member_of)
        yield rp.User(uid, username=username, full_name=full_name, email=email, member_of=member_of)
    for g in sorted(groups):
        yield rp.Group(g, name=g)


Connector = rp.connector(INFO, listing)
