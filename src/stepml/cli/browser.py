"""Opening the web UI: how ``stepml ui`` runs Streamlit, and the detached opener of the browser tab."""

from __future__ import annotations

import sys
import time
from pathlib import Path


def streamlit_command(app: Path, port: int, address: str) -> list[str]:
    """How `stepml ui` runs Streamlit: always headless. Not headless, Streamlit's first run asks for
    an e-mail address on the terminal and serves nothing until it is answered, which never happens
    when started from a script or without a terminal; `--open` opens the browser itself instead."""
    return [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(port),
            "--server.address", address, "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
            "--server.fileWatcherType", "none", "--theme.base", "light"]


def browser_url(address: str, port: int) -> str:
    """Where a browser on this machine reaches the UI (a wildcard address is reached as localhost)."""
    host = "localhost" if address in ("", "0.0.0.0", "::") else address
    return f"http://{host}:{port}"


#: How long the browser opener waits for the UI to answer before giving up.
OPEN_TIMEOUT_SECONDS = 60.0


def open_when_serving(url: str, env: dict[str, str]) -> None:
    """Open ``url`` in the user's browser once the UI answers, from a small detached process (this
    one becomes Streamlit)."""
    import subprocess

    code = "import sys; from stepml.cli.browser import wait_and_open; wait_and_open(sys.argv[1], float(sys.argv[2]))"
    subprocess.Popen([sys.executable, "-c", code, url, str(OPEN_TIMEOUT_SECONDS)], env=env, start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_and_open(url: str, timeout: float) -> bool:
    """Poll Streamlit's health endpoint until it answers (at most ``timeout`` s), then open the page."""
    import urllib.request
    import webbrowser

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return webbrowser.open(url)
        except OSError:
            pass
        time.sleep(0.3)
    return False
