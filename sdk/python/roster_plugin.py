"""roster connector SDK for Python (componentize-py, world `source` of roster:plugin@0.1.0).

An author declares the plugin's info once and writes a generator of users and groups; this
module does the rest of the contract: the `session` resource, batching into WIT batches
(at most 10,000 entries), the cursor and run mode, typed errors, and the host capabilities
(granted files, HTTP with a host-held credential, paged LDAP search, logging).

    import roster_plugin as rp

    INFO = rp.Info("people", "0.1.0", "People from a granted file",
                   keys=[rp.Key("path", rp.FILE, "The file", required=True)],
                   capabilities={"files": "reads the configured file"})

    def listing(run):
        for n, line in enumerate(rp.read_lines(run.config["path"]), 1):
            yield rp.User(line, username=line, locator=f"line {n}")

    Connector = rp.connector(INFO, listing)

Build: componentize-py -d wit -w source componentize app -o people.wasm
"""

import json
import struct
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import connector as _conn
from wit_world.imports import files as _files
from wit_world.imports import http as _http
from wit_world.imports import ldap as _ldap
from wit_world.imports import log as _log
from wit_world.imports import types as _t

# Key types, as `Key(..., type)` takes them.
STRING = _t.KeyType.STRING
BOOLEAN = _t.KeyType.BOOLEAN
INTEGER = _t.KeyType.INTEGER
LIST = _t.KeyType.LIST
FILE = _t.KeyType.FILE
DURATION = _t.KeyType.DURATION
SECRET = _t.KeyType.SECRET
URL = _t.KeyType.URL

# The host's batch caps are 10,000 entries and 64 MiB of strings; flush well below the latter.
MAX_ENTRIES = 10_000
MAX_BATCH_BYTES = 16 << 20


# ---- Typed errors -------------------------------------------------------------------------


class PluginError(Exception):
    """Base of the typed errors; the subclass picks the WIT `plugin-error` case."""

    case = _t.PluginError_BadData

    def wit(self):
        return self.case(str(self))


class ConfigError(PluginError):
    """The source config is wrong; the admin must fix it (not retried)."""

    case = _t.PluginError_Config


class AuthenticationError(PluginError):
    """Credentials were refused (not retried)."""

    case = _t.PluginError_Authentication


class UnavailableError(PluginError):
    """The source is unreachable or busy; worth a retry later."""

    case = _t.PluginError_Unavailable


class BadDataError(PluginError):
    """The source sent something that cannot be understood as a whole; the run changes nothing."""

    case = _t.PluginError_BadData


# ---- Self-description ---------------------------------------------------------------------


@dataclass
class Key:
    """A config key under `[sources.NAME.config]`. `default` is TOML, e.g. '"x"', 'true', '[]'."""

    name: str
    type: _t.KeyType
    description: str
    required: bool = False
    default: Optional[str] = None


@dataclass
class Bearer:
    """`Authorization: Bearer` with the value of secret key `secret_key`, held by the host."""

    name: str
    secret_key: str


@dataclass
class Basic:
    """HTTP basic auth: `username` is a template ("{user_key}"), `password_key` a secret key."""

    name: str
    username: str
    password_key: str


@dataclass
class OAuth2:
    """OAuth2 client credentials; templates name config keys in braces."""

    name: str
    token_url: str
    client_id: str
    client_secret_key: str
    scope: str


@dataclass
class ServiceAccount:
    """A service account's key (Google's JSON key file), named by the secret key
    `key_file_key` holding its path: the host signs an RS256 JWT assertion acting for `subject`
    (a template; "" for none) with the space-separated `scope` (a template) and exchanges it
    at the key's token_uri (RFC 7523). Neither the key nor the token reaches the plugin."""

    name: str
    key_file_key: str
    subject: str
    scope: str


@dataclass
class Info:
    name: str
    version: str
    description: str
    keys: List[Key] = field(default_factory=list)
    # Capability name ("files", "http", "ldap", "log") -> why the plugin needs it.
    capabilities: Dict[str, str] = field(default_factory=dict)
    credentials: List[Any] = field(default_factory=list)
    # Reconcile defaults this connector suggests, as TOML: {"pair_by": '"email"'}.
    defaults: Dict[str, str] = field(default_factory=dict)

    def wit(self) -> _t.PluginInfo:
        return _t.PluginInfo(
            name=self.name,
            version=self.version,
            description=self.description,
            config_keys=[
                _t.ConfigKey(k.name, k.type, k.required, k.default, k.description)
                for k in self.keys
            ],
            capabilities=[_t.Capability(n, r) for n, r in self.capabilities.items()],
            defaults=list(self.defaults.items()),
            credentials=[_credential(c) for c in self.credentials],
        )


def _credential(c) -> _t.Credential:
    if isinstance(c, Bearer):
        kind = _t.CredentialKind_Bearer(c.secret_key)
    elif isinstance(c, Basic):
        kind = _t.CredentialKind_Basic(_t.BasicCredential(c.username, c.password_key))
    elif isinstance(c, OAuth2):
        kind = _t.CredentialKind_Oauth2(
            _t.Oauth2Credential(c.token_url, c.client_id, c.client_secret_key, c.scope)
        )
    elif isinstance(c, ServiceAccount):
        kind = _t.CredentialKind_ServiceAccount(
            _t.ServiceAccountCredential(c.key_file_key, c.subject, c.scope)
        )
    else:
        raise TypeError(f"not a credential: {c!r}")
    return _t.Credential(c.name, kind)


# ---- What a listing yields ----------------------------------------------------------------


def _values(v) -> List[str]:
    if v is None:
        return []
    if isinstance(v, bool):
        return ["true" if v else "false"]
    if isinstance(v, (list, tuple, set)):
        return [str(x) for x in v if x is not None]
    return [str(v)]


def _object(kind, id, locator, member_of, members, parent, attributes) -> _t.Entry:
    attrs = [_t.Attribute(n, _values(v)) for n, v in attributes.items() if _values(v)]
    return _t.Entry_Object(
        _t.SourceObject(
            kind=kind,
            id=str(id),
            locator=locator,
            attributes=attrs,
            member_of=[str(m) for m in member_of],
            members=[str(m) for m in members],
            parent=None if parent is None else str(parent),
        )
    )


def User(id, *, locator=None, member_of=(), **attributes) -> _t.Entry:
    """A user. Attributes named like roster fields (username, full_name, email, groups, ...)
    fill them; `member_of` lists ids of group objects."""
    return _object(_t.ObjectKind.USER, id, locator, member_of, (), None, attributes)


def Group(id, *, locator=None, members=(), member_of=(), parent=None, **attributes) -> _t.Entry:
    """A group object; its `name` attribute names it. `members` are ids of users or groups."""
    return _object(_t.ObjectKind.GROUP, id, locator, member_of, members, parent, attributes)


def Removed(kind: str, id) -> _t.Entry:
    """An object that left the source (delta runs): kind is "user" or "group"."""
    return _t.Entry_Removed(_t.Removal(_kind(kind), str(id)))


def Failed(locator: str, reason: str) -> _t.Entry:
    """An entry that could not be read; the run goes on without it."""
    return _t.Entry_Failed(_t.FailedEntry(str(locator), str(reason)))


def _kind(kind: str):
    return {"user": _t.ObjectKind.USER, "group": _t.ObjectKind.GROUP}[kind]


def _size(e) -> int:
    v = e.value
    if isinstance(e, _t.Entry_Object):
        n = len(v.id) + sum(len(m) for m in v.member_of) + sum(len(m) for m in v.members)
        return n + sum(len(a.name) + sum(len(x) for x in a.values) for a in v.attributes)
    if isinstance(e, _t.Entry_Failed):
        return len(v.locator) + len(v.reason)
    return len(v.id)


# ---- A run --------------------------------------------------------------------------------


class Run:
    """One run, as the listing sees it.

    config: the source's config (a dict; declared defaults filled in; secrets never appear).
    requested: "full" or "delta", what the host asked for; cursor: the last committed cursor.
    Set `mode` to "delta" when the listing is one (default "full"), `next_cursor` for the next
    delta run, and call `notice()` for things the admin should know.
    """

    def __init__(self, info: Info, request: _conn.RunRequest):
        try:
            config = json.loads(request.config or "{}")
        except ValueError as e:
            raise ConfigError(f"config is not JSON: {e}") from None
        for k in info.keys:
            if k.name not in config and k.default is not None:
                config[k.name] = _toml_value(k.default)
            if k.required and k.name not in config and k.type != SECRET:
                raise ConfigError(f"missing required key `{k.name}` ({k.description})")
        self.config: Dict[str, Any] = config
        self.requested = "delta" if request.mode == _t.RunMode.DELTA else "full"
        self.cursor: Optional[str] = request.cursor
        self.mode = "full"
        self.next_cursor: Optional[str] = None
        self.notices: List[str] = []

    def notice(self, message: str) -> None:
        self.notices.append(message)


def _toml_value(text: str):
    # Declared defaults are TOML literals; the simple ones are JSON too.
    try:
        return json.loads(text)
    except ValueError:
        return text


def _wit_error(e: BaseException):
    if isinstance(e, PluginError):
        return Err(e.wit())
    # An author's bug (KeyError on a missing field, ...): keep the message, log the trace.
    log("error", "".join(traceback.format_exception(e)))
    return Err(_t.PluginError_BadData(f"{type(e).__name__}: {e}"))


class _Session(_conn.Session):
    def __init__(self, run: Run, items: Iterator):
        self.run = run
        self.items = items
        self.done = False

    def next_batch(self) -> Optional[_t.Batch]:
        if self.done:
            return None
        entries, size = [], 0
        try:
            for e in self.items:
                entries.append(e)
                size += _size(e)
                if len(entries) >= MAX_ENTRIES or size >= MAX_BATCH_BYTES:
                    return _t.Batch([], entries)
        except Exception as e:
            self.done = True
            raise _wit_error(e)
        self.done = True
        return _t.Batch([], entries) if entries else None

    def finish(self) -> _conn.RunEnd:
        mode = _t.RunMode.DELTA if self.run.mode == "delta" else _t.RunMode.FULL
        return _conn.RunEnd(mode, self.run.next_cursor, self.run.notices)


def connector(info: Info, listing: Callable[[Run], Iterable], test: Optional[Callable] = None):
    """The class componentize-py exports: assign it to `Connector` in the app module.

    `listing(run)` yields User/Group/Removed/Failed entries. `test(run)`, if given, returns a
    dict with any of users, groups, sample (a User) and messages; by default `sources test`
    runs the listing and counts what it yields.
    """

    class Connector(exports.Connector):
        def info(self) -> _t.PluginInfo:
            return info.wit()

        def open(self, request: _conn.RunRequest):
            try:
                run = Run(info, request)
                return _Session(run, iter(listing(run)))
            except Exception as e:
                raise _wit_error(e)

        def test(self, config: str) -> _conn.TestReport:
            try:
                run = Run(info, _conn.RunRequest(config, _t.RunMode.FULL, None))
                if test is not None:
                    r = test(run)
                    sample = r.get("sample")
                    return _conn.TestReport(
                        r.get("users"),
                        r.get("groups"),
                        sample.value if sample is not None else None,
                        list(r.get("messages", [])),
                    )
                users = groups = failed = 0
                sample = None
                for e in listing(run):
                    if isinstance(e, _t.Entry_Object):
                        if e.value.kind == _t.ObjectKind.USER:
                            users += 1
                            sample = sample or e.value
                        else:
                            groups += 1
                    elif isinstance(e, _t.Entry_Failed):
                        failed += 1
                messages = list(run.notices)
                if failed:
                    messages.append(f"{failed} entries could not be read")
                return _conn.TestReport(users, groups, sample, messages)
            except Exception as e:
                raise _wit_error(e)

    return Connector


# ---- Host capabilities --------------------------------------------------------------------


def log(level: str, message: str) -> None:
    """Log into roster's log: level is trace, debug, info, warn or error."""
    _log.log(_log.Level[level.upper()], message)


def _file_error(err) -> PluginError:
    if isinstance(err, _files.FileError_Io):
        return UnavailableError(err.value)
    # Not granted, or not there: the config names the wrong file.
    return ConfigError(err.value)


def open_file(path: str):
    """Open a granted file (a `file` config key's value, or one in the source's `files`)."""
    try:
        return _files.open(path)
    except Err as e:
        raise _file_error(e.value) from None


def read_chunks(path: str, chunk: int = 1 << 20) -> Iterator[bytes]:
    """A granted file's bytes, a chunk at a time."""
    with open_file(path) as f:
        while True:
            try:
                data = f.read(chunk)
            except Err as e:
                raise _file_error(e.value) from None
            if not data:
                return
            yield data


def read_file(path: str) -> bytes:
    """A granted file's whole content."""
    return b"".join(read_chunks(path))


def read_lines(path: str, encoding: str = "utf-8") -> Iterator[str]:
    """A granted text file's lines, without line ends, read as a stream."""
    rest = b""
    for data in read_chunks(path):
        lines = (rest + data).split(b"\n")
        rest = lines.pop()
        for line in lines:
            yield _decode(line, encoding, path)
    if rest:
        yield _decode(rest, encoding, path)


def _decode(line: bytes, encoding: str, path: str) -> str:
    try:
        return line.decode(encoding).rstrip("\r")
    except UnicodeDecodeError as e:
        raise BadDataError(f"{path}: not {encoding}: {e}") from None


@dataclass
class Response:
    status: int
    headers: List[tuple]
    body: bytes

    def header(self, name: str) -> Optional[str]:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise BadDataError(f"the response is not JSON: {e}") from None


def send(method: str, url: str, *, headers=(), body: Optional[bytes] = None, credential=None):
    """An HTTP request to a granted origin; `credential` names one of Info.credentials, which
    the host attaches (the plugin never sees the secret)."""
    req = _http.Request(method, url, list(headers), body, credential)
    try:
        r = _http.send(req)
    except Err as e:
        err = e.value
        if isinstance(err, _http.HttpError_Denied):
            raise ConfigError(f"{url}: {err.value}") from None
        if isinstance(err, _http.HttpError_Authentication):
            raise AuthenticationError(err.value) from None
        if isinstance(err, _http.HttpError_TooLarge):
            raise BadDataError(f"{url}: {err.value}") from None
        raise UnavailableError(err.value) from None  # the host names the URL
    return Response(r.status, r.headers, r.body)


def get_json(url: str, *, credential=None, headers=()):
    """GET a JSON document; HTTP errors become typed errors (401/403: authentication,
    429/5xx: unavailable, others: bad data)."""
    r = send("GET", url, headers=[("Accept", "application/json"), *headers], credential=credential)
    if r.status in (401, 403):
        raise AuthenticationError(f"{url}: HTTP {r.status}")
    if r.status == 429 or r.status >= 500:
        raise UnavailableError(f"{url}: HTTP {r.status}")
    if not 200 <= r.status < 300:
        raise BadDataError(f"{url}: HTTP {r.status}")
    return r.json()


def ldap_search(filter: str, attributes: List[str], *, base=None, scope="subtree", page_size=0):
    """Entries of a paged search through the host's bound connection, one page in memory at a
    time, as (dn, {attribute: [text values]}) pairs. Binary values are decoded as latin-1.
    Pages cross as one buffer each (`next-page-packed`, decoded by `unpack_ldap_page`)."""
    try:
        conn = _ldap.connect()
        req = _ldap.SearchRequest(
            base, _ldap.Scope[scope.upper()], filter, list(attributes), page_size, False
        )
        search = conn.search(req)
        while True:
            buf = search.next_page_packed()
            if buf is None:
                return
            yield from unpack_ldap_page(buf)
    except Err as e:
        err = e.value
        if isinstance(err, _ldap.LdapError_InvalidCredentials):
            raise AuthenticationError(err.value) from None
        if isinstance(err, (_ldap.LdapError_NoSuchBase, _ldap.LdapError_Denied)):
            raise ConfigError(err.value) from None
        raise UnavailableError(err.value) from None


_U32 = struct.Struct("<I")


def unpack_ldap_page(buf) -> List[Tuple[str, Dict[str, List[str]]]]:
    """Decodes a page in the contract's packed layout (`next-page-packed` in wit/host.wit:
    u32 little-endian counts and lengths, `entry-count, { dn, attribute-count, { name,
    value-count, { value } } }`) into ldap_search's (dn, {attribute: [text values]}) pairs.
    A truncated or malformed buffer raises BadDataError ("packed LDAP page: ...")."""
    mv = memoryview(buf)
    end = len(mv)
    entries = []
    try:
        n, at = _packed_count(mv, 0, end)
        for _ in range(n):
            dn, at = _packed_field(mv, at, end)
            dn = str(dn, "utf-8")
            attrs, at = _packed_count(mv, at, end)
            entry = {}
            for _ in range(attrs):
                name, at = _packed_field(mv, at, end)
                name = str(name, "utf-8")
                count, at = _packed_count(mv, at, end)
                values = []
                for _ in range(count):
                    v, at = _packed_field(mv, at, end)
                    values.append(_text(v))
                entry[name] = values
            entries.append((dn, entry))
    except struct.error:
        raise _broken("truncated") from None
    except UnicodeDecodeError:
        # Values fall back to latin-1 inside _text: only a DN or a name gets here.
        raise _broken("a DN or name is not UTF-8") from None
    if at != end:
        raise _broken(f"{end - at} bytes after the last entry")
    return entries


def _packed_count(mv: memoryview, at: int, end: int):
    """A count and where the next field starts. Each item takes at least 4 bytes, so a count
    the rest of the buffer cannot back is refused before anything is reserved for it."""
    (n,) = _U32.unpack_from(mv, at)
    at += 4
    if n > (end - at) >> 2:
        raise _broken("a count exceeds the buffer")
    return n, at


def _packed_field(mv: memoryview, at: int, end: int):
    (n,) = _U32.unpack_from(mv, at)
    at += 4
    if n > end - at:
        raise _broken("a value exceeds the buffer")
    return mv[at : at + n], at + n


def _broken(what: str) -> BadDataError:
    return BadDataError(f"packed LDAP page: {what}")


def _text(v) -> str:
    try:
        return str(v, "utf-8")
    except UnicodeDecodeError:
        return str(v, "latin-1")
