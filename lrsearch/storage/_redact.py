"""What lrsearch shows of a storage: its URL and messages about it without a password or
any piece of one (`redact`, `redact_text`), a URL a driver would misread refused before
it connects (`check_url`; a storage proxy's `grpc://HOST:PORT`, read by `grpc_address`),
and a database's or the proxy's errors in one plain line (`describe_error`), in
lrsearch's messages and in the log lines of SQLAlchemy, Optuna and gRPC alike
(`plain_database_logs`).
"""

from __future__ import annotations

import logging
import os
import re
import urllib.parse

from lrsearch.errors import StorageOpenError

#: Query parameters that carry a password (libpq, SQLAlchemy drivers); any name holding
#: "password" or "passwd" counts too (`ssl_password`, `db_password`).
_PASSWORD_PARAMS = {"password", "passwd", "pwd", "sslpassword"}
#: A URL inside a message (`redact_text`): up to a space or a quote.
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"]+")
#: Where a driver may split a password it misreads; a piece between two of them may be echoed.
_SEPARATORS = re.compile(r"[@:/?#&=%]")
#: The shortest piece of a password scrubbed on its own (shorter ones are ordinary text).
_SHORTEST_PIECE = 4
#: What SQLAlchemy appends to a driver's message (the statement, its parameters, a link to
#: its documentation), and the excerpt of the statement PostgreSQL adds ("LINE 2: ...", "^").
_SQL_APPENDIX = re.compile(r"\s*\[SQL: .*?(?:\(Background on this error at: [^)]*\)|\Z)", re.S)
_SQL_LINK = re.compile(r"\s*\(Background on this error at: [^)]*\)")
_STATEMENT_EXCERPT = re.compile(r"\n\s*LINE \d+: .*(?:\n\s*\^)?")
#: Packages whose exceptions are a database's errors.
_DATABASE_PACKAGES = ("sqlalchemy", "psycopg", "psycopg2", "pymysql", "MySQLdb", "sqlite3", "redis")
#: A storage proxy's address: a host name, IPv4 address or bracketed IPv6 address, and a port.
_GRPC_ADDRESS = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})/?")
#: The passwords of the storages this process opened (`keep_secret`), scrubbed from what
#: `describe_error` and the drivers' logs say, which know no URL.
_SECRETS: set[str] = set()


def is_url(storage: str) -> bool:
    return "://" in storage


def is_grpc(storage: str) -> bool:
    """Whether `storage` names a gRPC storage proxy (`lrsearch storage-proxy`)."""
    return storage.partition("://")[0].lower() in ("grpc", "grpcs") and is_url(storage)


def grpc_address(storage: str) -> tuple[str, int]:
    """(host, port) of a `grpc://HOST:PORT` storage (an IPv6 host in brackets, as gRPC
    takes it); StorageOpenError for anything else: TLS, a user or password, a path, a
    query, no port. The message shows the URL redacted."""
    scheme, _, rest = storage.partition("://")
    if scheme.lower() == "grpcs":
        raise StorageOpenError(f"{redact(storage)}: Optuna's gRPC storage proxy speaks plain gRPC only; write "
                               f"grpc://HOST:PORT and keep the proxy on a network that only your machines reach.")
    found = _GRPC_ADDRESS.fullmatch(rest)
    if found is None or not 0 < int(found["port"]) < 65536:
        raise StorageOpenError(f"a storage proxy's URL is grpc://HOST:PORT (e.g. grpc://proxy-host:13000): its "
                               f"address, with no user, password, path or query, but got {redact(storage)}.")
    return found["host"], int(found["port"])


def redact(storage: str) -> str:
    """`storage` with any password replaced by ***: in `user:password@host` (the
    password may hold '@', ':', '/' or '?', or be percent-encoded) and in query parameters
    such as `?password=` or `&PWD=`; where it finds none but another parser would read one
    (`_other_readings`), that. A path or `sqlite:///x.db` stays as it is."""
    if not is_url(storage):
        return storage
    scheme, _, rest = storage.partition("://")
    authority, slash, tail = _split_authority(rest)
    userinfo, at, host = authority.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if at and colon and password:
        authority = f"{user}:***@{host}"
    path, question, query = tail.partition("?")
    if question:
        query = "&".join(_redact_param(part) for part in query.split("&"))
    shown = f"{scheme}://{authority}{slash}{path}{question}{query}"
    if "***" not in shown:
        for secret in _pieces(_other_readings(rest)):
            shown = shown.replace(secret, "***")
    return shown


#: How SQLAlchemy's URL pattern reads `user:password@` (the password ends at the first '@').
_SQLALCHEMY_USERINFO = re.compile(r"([^:/]*):([^@]*)@")


def _other_readings(rest: str) -> list[str]:
    """The passwords that other parsers read in `rest` (a URL after "://"): SQLAlchemy's,
    up to the first '@', and urllib's, in what precedes the first '/', '?' or '#'; of at
    least `_SHORTEST_PIECE` characters (a shorter one is as likely ordinary text)."""
    found = []
    read = _SQLALCHEMY_USERINFO.match(rest)
    if read:
        found.append(read.group(2))
    userinfo, at, _ = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")
    if at and ":" in userinfo:
        found.append(userinfo.partition(":")[2])
    return [password for password in found if len(password) >= _SHORTEST_PIECE]


def check_url(storage: str) -> None:
    """StorageOpenError for a grpc:// URL that is not a proxy's address (`grpc_address`,
    whose message shows the URL redacted), a postgres:// URL (SQLAlchemy knows
    postgresql://), a scheme that names no database SQLAlchemy knows (mongodb://), an in-memory SQLite database (no file: each process would have its
    own), or if URL `storage` holds a raw '@' that a driver may misread: more than one
    (drivers end a password at its first '@' and take the rest for the host, which they
    then print), or one that SQLAlchemy reads otherwise (in a query after `host:port`),
    whose message shows no part of the URL but its scheme."""
    if not is_url(storage):
        return
    if is_grpc(storage):
        grpc_address(storage)
        return
    scheme, _, rest = storage.partition("://")
    if scheme == "postgres":
        raise StorageOpenError("write postgresql://, not postgres:// (the name SQLAlchemy knows the database by).")
    if not scheme.startswith("redis") and not _known_database(storage):
        raise StorageOpenError(f"cannot open storage {redact(storage)}: {scheme}:// names no database that "
                               f"SQLAlchemy knows; give a journal file's path, a database URL (postgresql://, "
                               f"mysql://, sqlite:///FILE), grpc://HOST:PORT of an `lrsearch storage-proxy`, or "
                               f"redis://.")
    if scheme.partition("+")[0] == "sqlite" and rest.partition("?")[0] in ("", "/", "/:memory:"):
        raise StorageOpenError(f"{storage} is an in-memory SQLite database, which each process holds alone, so that "
                               f"the workers could not share it: give a file, e.g. sqlite:///study.db.")
    authority = _split_authority(rest)[0]
    if (authority and rest.count("@") > 1) or _misread(storage, authority):
        raise StorageOpenError(f"the {scheme} storage URL holds an '@' that a database driver may misread (and then "
                               f"print part of the password): percent-encode '@' in the user name, password and "
                               f"query as %40 (':' as %3A, '/' as %2F) and try again.")


def _known_database(storage: str) -> bool:
    """Whether SQLAlchemy has a dialect for the database URL `storage` (its driver may still be missing)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import NoSuchModuleError

    try:
        make_url(storage).get_dialect()
    except NoSuchModuleError:
        return False
    except Exception:  # noqa: BLE001 - opening it says what is wrong
        return True
    return True


def _misread(storage: str, authority: str) -> bool:
    """Whether SQLAlchemy, which hands an RDB URL to its driver, reads another password
    from `storage` than the one its `authority` holds."""
    if storage.startswith("redis"):
        return False
    from sqlalchemy.engine import make_url

    try:
        read = make_url(storage).password
    except Exception:  # noqa: BLE001 - opening it says what is wrong
        return False
    userinfo, at, _ = authority.rpartition("@")
    return read != (urllib.parse.unquote(userinfo.partition(":")[2]) if at and ":" in userinfo else None)


def _split_authority(rest: str) -> tuple[str, str, str]:
    """`rest` (a URL after "://") as (user:password@host:port, "/" or "", what follows).

    The password may hold '@', ':' and '/', so the user info ends at the last '@' before
    the query, not at the first '/'; it starts where a '?' is followed by `name=` before
    any later '@' (so `pa?ss@host` is a password and `db?password=p@ss` a query). A URL
    whose "://" is followed by '/' (`sqlite:///x.db`) has no authority."""
    if rest.startswith("/"):
        return "", "/", rest[1:]
    query = _query_start(rest)
    at = rest.rfind("@", 0, query)
    if at < 0 and ":" in rest[:query] and "/" not in rest[:query] and "@" in rest[query:]:
        # `user:pa?x=1@host/db`: no path before the '?', so it may still be in a password,
        # unless what follows it is a password parameter (`host:1?password=p@ss`)
        path = rest.find("/", query)
        candidate = rest.rfind("@", 0, path if path >= 0 else len(rest))
        if not any(_is_password_param(part.partition("=")[0]) for part in rest[query + 1:candidate].split("&")):
            at = candidate
    for i in range(max(at, 0), len(rest)):
        if rest[i] == "/":
            return rest[:i], "/", rest[i + 1:]
        if rest[i] == "?":
            return rest[:i], "", rest[i:]
    return rest, "", ""


def _query_start(rest: str) -> int:
    """Where the query of `rest` starts: its first '?' followed by `name=` before the next
    '@' (or with no '@' after it); len(rest) when there is none."""
    i = rest.find("?")
    while i >= 0:
        at = rest.find("@", i)
        if at < 0 or "=" in rest[i:at]:
            return i
        i = rest.find("?", i + 1)
    return len(rest)


def _is_password_param(key: str) -> bool:
    key = urllib.parse.unquote_plus(key).strip().lower()
    return key in _PASSWORD_PARAMS or "password" in key or "passwd" in key


def _redact_param(part: str) -> str:
    key, equals, value = part.partition("=")
    return f"{key}=***" if equals and value and _is_password_param(key) else part


def passwords_of(storage: str) -> list[str]:
    """The passwords in `storage`, raw, percent-decoded and percent-encoded (as a driver
    may echo them), longest first: for scrubbing messages."""
    found = []
    if is_url(storage):
        rest = storage.partition("://")[2]
        authority, _, tail = _split_authority(rest)
        userinfo = authority.rpartition("@")[0]
        if ":" in userinfo:
            found.append(userinfo.split(":", 1)[1])
        for part in tail.partition("?")[2].split("&"):
            key, equals, value = part.partition("=")
            if equals and _is_password_param(key):
                found += [value, urllib.parse.unquote_plus(value)]
        if not any(found):
            found += _other_readings(rest)
    found = [p for p in found if p]
    found += [urllib.parse.unquote(p) for p in found]
    found += [urllib.parse.quote(p, safe="") for p in found]
    return sorted(set(found), key=len, reverse=True)


def _pieces(passwords: list[str] | set[str]) -> list[str]:
    """`passwords` and every run of their pieces between the characters where a driver
    may split one (`_SEPARATORS`), of at least `_SHORTEST_PIECE` characters, longest first."""
    pieces = set(passwords)
    for password in passwords:
        cuts = sorted({0, len(password), *(i for m in _SEPARATORS.finditer(password) for i in (m.start(), m.end()))})
        pieces.update(password[a:b] for a in cuts for b in cuts if b - a >= _SHORTEST_PIECE)
    return sorted(pieces, key=len, reverse=True)


def redact_text(text: str, storage: str) -> str:
    """`text` (an error message, say) with every URL in it redacted, the passwords of
    `storage` (and of the storages this process opened) replaced by ***, pieces of them
    too, and SQLAlchemy's statement, parameters and link cut."""
    text = _URL.sub(lambda m: redact(m.group(0)), _without_sql(text))
    for secret in _pieces({*passwords_of(storage), *_SECRETS}):
        if len(secret) >= _SHORTEST_PIECE:
            text = text.replace(secret, "***")
        else:  # as likely a piece of a word ("p" of "ImportError"): only where it stands alone
            text = re.sub(rf"(?<!\w){re.escape(secret)}(?!\w)", "***", text)
    return text


def keep_secret(storage: str) -> None:
    """Remember the passwords of `storage`, which this process opens, so that no message
    of its driver shows them."""
    _SECRETS.update(passwords_of(storage))


def describe_error(exc: BaseException) -> str:
    """How lrsearch words an error of a storage, in one plain line: a database's error as
    its driver's first line ("connection refused"), any other as its type and first line;
    never SQLAlchemy's statement, parameters or link, nor a password."""
    chain = [exc]
    while (cause := chain[-1].__cause__ or chain[-1].__context__) is not None and cause not in chain:
        chain.append(cause)
    status = next((found for error in chain if (found := _grpc_status(error))), None)
    if status is not None:
        code, details = status
        return redact_text(f"{code}: {details.splitlines()[0][:300] if details else 'no details'}", "")
    database = [error for error in chain if _is_database_error(error)]
    if not database:
        return redact_text(f"{type(exc).__name__}: {_first_line(exc)}".rstrip(": "), "")
    driver = next((error.orig for error in database if isinstance(getattr(error, "orig", None), BaseException)),
                  database[-1])
    return redact_text(_first_line(driver) or type(driver).__name__, "")


def _grpc_status(exc: BaseException) -> tuple[str, str] | None:
    """(status code name, details) of a failed gRPC call, which its str() buries in a
    multi-line dump; None for any other exception."""
    if not (type(exc).__module__ or "").startswith("grpc") or not callable(getattr(exc, "code", None)):
        return None
    try:
        code, details = exc.code(), exc.details()
    except Exception:  # noqa: BLE001 - not a call's error after all
        return None
    return getattr(code, "name", str(code)), details or ""


def _is_database_error(exc: BaseException) -> bool:
    return (type(exc).__module__ or "").split(".")[0] in _DATABASE_PACKAGES


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in _without_sql(str(exc)).splitlines() if line.strip()]
    return lines[0][:300] if lines else ""


def _without_sql(text: str) -> str:
    return _STATEMENT_EXCERPT.sub("", _SQL_LINK.sub("", _SQL_APPENDIX.sub("", text)))


class _PlainDatabaseLog(logging.Filter):
    """Rewrites a log record without a database's statement, parameters or passwords; a
    database error it carries is worded by `describe_error` on its first line, with no
    traceback. Drops Optuna's word that a failed read falls back to a slower one: where the
    database is out of reach, the read fails again and the storage's wait says so."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        try:
            message = redact_text(record.getMessage(), "")
        except Exception:  # noqa: BLE001 - a record logging itself reports as malformed
            return True
        if message.startswith("Caught an error from sqlalchemy") and "slower alternative" in message:
            return False
        if error is not None and any(_is_database_error(e) for e in (error, error.__cause__, error.__context__) if e):
            message = f"{message.splitlines()[0] if message else type(error).__name__}: {describe_error(error)}"
            record.exc_info, record.exc_text = None, None
        record.msg, record.args = message, None
        return True


_PLAIN_DATABASE_LOG = _PlainDatabaseLog()


def plain_database_logs(engine) -> None:
    """Have the logs of SQLAlchemy `engine` (and its connection pool) and Optuna's logs say
    a database error in one plain line; LRSEARCH_VERBOSE (--verbose) keeps them whole."""
    plain_logs(engine.logger, engine.pool.logger, *logging.getLogger("optuna").handlers)


def plain_logs(*loggers: logging.Filterer) -> None:
    """Have `loggers` (or handlers) say a database error in one plain line, and no password;
    LRSEARCH_VERBOSE (--verbose) keeps them whole."""
    if os.environ.get("LRSEARCH_VERBOSE"):
        return
    for where in loggers:
        if isinstance(where, logging.Filterer):
            where.addFilter(_PLAIN_DATABASE_LOG)
