"""Certificates for a test deployment: one CA generated for the deployment, and a server
certificate signed by it for every instance, made with Debian's `openssl` command.

EC P-256 keys: a key costs milliseconds where RSA-2048 costs a tenth of a second or more, so
`deploy up` stays fast. Key files are mode 0600; an instance's key belongs to the user Cyrus
runs as (it reads it after dropping privileges), the CA's key to whoever ran `deploy up`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

from loadtest.deploy.render import TlsFiles
from loadtest.errors import UsageError

TLS_DIR = "tls"
CA_CERT = "ca.pem"
CA_KEY = "ca.key"
VALID_DAYS = 30  # a test deployment lives for hours; long enough for a forgotten one
_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
# Python's default context verifies strictly (X509_STRICT on newer versions): key identifiers
# and key usage must be present.
_CA_EXTENSIONS = ["-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                  "-addext", "subjectKeyIdentifier=hash"]


def _openssl(args: list[str], cwd: Path) -> None:
    if shutil.which("openssl") is None:
        raise UsageError("openssl is not installed (needed for the deployment's certificates; "
                         "--tls none opts out): apt-get install openssl")
    try:
        subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"openssl {args[0]} failed in {cwd}: "
                           f"{detail[-1] if detail else exc.returncode}") from None


def _private(path: Path, uid: int | None = None, gid: int | None = None) -> None:
    path.chmod(0o600)
    if uid is not None and gid is not None:
        os.chown(path, uid, gid)


def make_ca(deployment_root: Path, label: str) -> Path:
    """Create the deployment's CA in ``deployment_root/tls``; returns the CA certificate's path."""
    directory = deployment_root / TLS_DIR
    directory.mkdir(mode=0o755, exist_ok=True)
    _openssl(["req", "-x509", "-new", *_EC_KEY, "-keyout", CA_KEY, "-out", CA_CERT,
              "-days", str(VALID_DAYS), "-subj", f"/CN=cyrus-loadtest test CA {label}",
              *_CA_EXTENSIONS], directory)
    _private(directory / CA_KEY)
    return directory / CA_CERT


def issue_server_cert(ca_cert: Path, instance_root: Path, name: str, ip: str,
                      uid: int, gid: int, days: int = VALID_DAYS) -> TlsFiles:
    """A server certificate for ``ip`` (subjectAltName IP only: the suite connects by address)
    signed by the CA, in ``instance_root/tls``; the key is 0600 and owned by ``uid``. A
    negative ``days`` gives a certificate that has already expired (for tests)."""
    directory = instance_root / TLS_DIR
    directory.mkdir(mode=0o755, exist_ok=True)
    files = TlsFiles(cert=directory / "server.pem", key=directory / "server.key")
    extensions = directory / "server.ext"
    extensions.write_text(f"subjectAltName=IP:{ip}\n"
                          "basicConstraints=critical,CA:FALSE\n"
                          "keyUsage=critical,digitalSignature\n"
                          "extendedKeyUsage=serverAuth\n"
                          "subjectKeyIdentifier=hash\n"
                          "authorityKeyIdentifier=keyid\n")
    _openssl(["req", "-new", *_EC_KEY, "-keyout", files.key.name, "-out", "server.csr",
              "-subj", f"/CN={ip}/OU=cyrus-loadtest {name}"], directory)
    _private(files.key, uid, gid)
    _openssl(["x509", "-req", "-in", "server.csr", "-CA", str(ca_cert),
              "-CAkey", str(ca_cert.with_name(CA_KEY)), "-set_serial",
              str(secrets.randbits(63)), "-days", str(days), "-extfile", extensions.name,
              "-out", files.cert.name], directory)
    (directory / "server.csr").unlink()
    extensions.unlink()
    for path in (directory, files.cert):
        os.chown(path, uid, gid)
    return files
