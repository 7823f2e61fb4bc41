"""What a run needs before the first server starts: tools, a certificate, the static file.

The certificate is made by the bench venv's Python (trustme is installed there by
setup.sh), so the harness itself runs on any Python 3.10+ with nothing installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from bench.model import VENV_BIN, Scenario, Server, TlsFiles

# A throwaway CA and server cert for 127.0.0.1; the key as PKCS#8, since granian reads
# nothing else (and every server gets the same files).
MAKE_CERT = """
import sys
import trustme
from cryptography.hazmat.primitives import serialization

cert_path, key_path, ca_path = sys.argv[1:4]
ca = trustme.CA()
cert = ca.issue_cert("127.0.0.1", "localhost")
key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), password=None)
pkcs8 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
with open(cert_path, "wb") as out:
    out.write(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
with open(key_path, "wb") as out:
    out.write(pkcs8)
ca.cert_pem.write_to_path(ca_path)
"""


def make_tls_files(directory: Path) -> TlsFiles:
    files = TlsFiles(directory / "cert.pem", directory / "key.pem", directory / "ca.pem")
    subprocess.run([str(VENV_BIN / "python"), "-c", MAKE_CERT, str(files.cert), str(files.key),
                    str(files.ca)], check=True, timeout=60)
    return files


def make_static_file(directory: Path, size: int) -> Path:
    """The file the ``static`` row serves; its content does not matter, its size does."""
    path = directory / "static.bin"
    path.write_bytes(os.urandom(size))
    return path


def have_tool(tool: str) -> bool:
    """On PATH, or built into the bench venv (ws_load)."""
    return bool(shutil.which(tool)) or os.access(VENV_BIN / tool, os.X_OK)


def check_tools(scenarios: Sequence[Scenario]) -> list[str]:
    """What is missing for a run; setup.sh installs all of it."""
    taskset = ["taskset"] if any(sc.pinned for sc in scenarios) else []
    tools = dict.fromkeys([*taskset, *(sc.tool for sc in scenarios if sc.tool)])
    missing = [tool + (" (run bench/setup.sh)" if tool == "ws_load" else "")
               for tool in tools if not have_tool(tool)]
    if not (VENV_BIN / "python").exists():
        missing.append(f"{VENV_BIN / 'python'} (run bench/setup.sh)")
    if (os.cpu_count() or 1) < 2:
        missing.append("a second CPU (server and load generator each get one; "
                       "the unpinned rows share two)")
    return missing


def missing_venv(server: Server) -> str:
    """Why a ``--python`` twin cannot run: its venv was never built ("" if it was)."""
    if server.python and not (server.bin_dir / "python").exists():
        return f"no {server.bin_dir.parent.name} (run: bash bench/setup.sh {server.python})"
    return ""
