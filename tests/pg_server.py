"""A throwaway PostgreSQL server for tests: initdb + pg_ctl in a temp folder, gone afterwards.

No system service is touched: the cluster lives in its own folder, listens on 127.0.0.1 at a
free port (its unix socket sits in that folder too) and trusts local connections, which is
fine for a server that lives for one test. PostgreSQL refuses to run as root, so as root the
server commands run as the ``postgres`` user (which Debian's package creates) and the folder
is handed to that user. Where the binaries are missing, ``make postgres`` installs them.

    with pg_server.running() as url:   # postgresql+psycopg://postgres@127.0.0.1:PORT/trainlab
        ...

Usable by hand too: ``python tests/pg_server.py`` prints a URL and serves until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class Unavailable(RuntimeError):
    """PostgreSQL cannot be started here; the message says why (a test skips with it)."""


def find_bin(name: str) -> str | None:
    """initdb and pg_ctl: on PATH, else where Debian puts them (newest version first)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return candidates[-1] if candidates else None


def ensure_installed() -> None:
    """Run ``make postgres`` when initdb is missing and this process may install packages."""
    if find_bin("initdb") and find_bin("pg_ctl"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get") or not shutil.which("make"):
        raise Unavailable("PostgreSQL's initdb/pg_ctl are not on PATH nor in /usr/lib/postgresql/*/bin, and "
                          "this is not a root Debian machine with apt-get and make: install PostgreSQL "
                          "(Debian: `make postgres` as root)")
    done = subprocess.run(["make", "-C", str(REPO), "postgres"], capture_output=True, text=True)
    if done.returncode != 0 or not find_bin("initdb"):
        raise Unavailable(f"`make postgres` could not install PostgreSQL (exit {done.returncode}): "
                          f"{(done.stderr or done.stdout).strip()[-500:]}")


def _server_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise Unavailable("running as root and there is no 'postgres' user to run the server as") from None


def _as_server_user(cmd: list[str]) -> list[str]:
    """As root, the same command as the postgres user (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return cmd
    _server_user()
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--", *cmd]
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(map(shlex.quote, cmd))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], what: str, timeout: float = 120) -> None:
    done = subprocess.run(_as_server_user(cmd), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise Unavailable(f"{what} failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[-800:]}")


@contextlib.contextmanager
def running(database: str = "trainlab"):
    """Start a server in a fresh temp folder; yield its SQLAlchemy URL; stop it and remove the folder."""
    ensure_installed()
    initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
    # not under pytest's tmp_path: its parents are root-only (0700), which the postgres user cannot enter
    root = Path(tempfile.mkdtemp(prefix="trainlab-pg-"))
    data, sock = root / "data", root / "sock"
    started = False
    try:
        sock.mkdir()
        if os.geteuid() == 0:  # the server user creates data/ and writes the log and socket here
            user = _server_user()
            for p in (root, sock):
                os.chown(p, user.pw_uid, user.pw_gid)
        _run([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"], "initdb")
        for attempt in range(3):  # the free port may be taken between choosing and binding it
            port = _free_port()
            opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c fsync=off"
            try:
                _run([pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-o", opts, "-w", "-t", "60",
                      "start"], "pg_ctl start")
                started = True
                break
            except Unavailable:
                if attempt == 2:
                    raise Unavailable(f"pg_ctl start failed 3 times; server log:\n{_tail(root / 'server.log')}")
        _createdb(port, database)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/{database}"
    finally:
        if started:
            subprocess.run(_as_server_user([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]),
                           capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


def _createdb(port: int, database: str) -> None:
    """CREATE DATABASE through the driver the test uses anyway (createdb may be off PATH)."""
    try:
        import psycopg
    except ImportError:
        raise Unavailable("the PostgreSQL driver is missing: pip install 'psycopg[binary]' "
                          "(or trainlab's dev extra)") from None
    # autocommit: CREATE DATABASE cannot run inside a transaction
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')


def _tail(path: Path, chars: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no server log)"


if __name__ == "__main__":
    import time

    with running() as url:
        print(url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
