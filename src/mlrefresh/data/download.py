"""Download a file from a list of mirrors, verified by MD5 before it is renamed into place.

The bytes go to a hidden temporary file in the target folder; only a file whose checksum matches
is renamed to its final name (an atomic rename on one file system). Whatever goes wrong (a mirror
that is down, a 404, a wrong checksum, Ctrl-C), the temporary file is removed, so the folder
never holds a half-written or unverified file under the real name.

Example:
    >>> from mlrefresh.data.download import fetch
    >>> fetch("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c",
    ...       ["https://ossci-datasets.s3.amazonaws.com/mnist/"], "data/mnist")  # doctest: +SKIP
    'data/mnist/t10k-labels-idx1-ubyte.gz'
"""

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request

from tqdm import tqdm

__all__ = ["DownloadFailed", "fetch", "md5sum"]

_CHUNK = 1 << 20


class DownloadFailed(Exception):
    """No mirror gave a verified file; `reasons` says what each one did."""

    def __init__(self, filename, reasons):
        self.filename = filename
        self.reasons = reasons
        super().__init__(f"{filename}: " + "; ".join(f"{url}: {why}" for url, why in reasons))


def md5sum(path: str) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _join(mirror: str, filename: str) -> str:
    return mirror if mirror.endswith(filename) else mirror.rstrip("/") + "/" + filename


def _download_to(url: str, out, timeout: float) -> str:
    """Stream url into the open file `out`; return the MD5 of what was written."""
    digest = hashlib.md5(usedforsecurity=False)
    request = urllib.request.Request(url, headers={"User-Agent": "mlrefresh"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        name = url.rsplit("/", 1)[-1]
        # disable=None: a progress bar on a terminal, silence in logs and CI
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc=name,
            disable=None,
            file=sys.stderr,
            leave=False,
        ) as bar:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
    return digest.hexdigest()


def fetch(filename: str, md5: str, mirrors: list[str], folder: str, timeout: float = 30.0) -> str:
    """Download `filename` from the first mirror that serves it with checksum `md5`.

    Returns the final path. Raises DownloadFailed (with one reason per mirror) when none does.
    """
    os.makedirs(folder, exist_ok=True)
    final = os.path.join(folder, filename)
    reasons = []
    for mirror in mirrors:
        url = _join(mirror, filename)
        fd, tmp = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=folder)
        try:
            with os.fdopen(fd, "wb") as out:
                got = _download_to(url, out, timeout)
            if got != md5:
                reasons.append((url, f"checksum mismatch (got md5 {got}, expected {md5})"))
                continue
            os.replace(tmp, final)
            return final
        except urllib.error.HTTPError as exc:
            reasons.append((url, f"HTTP {exc.code} {exc.reason}"))
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reasons.append((url, str(getattr(exc, "reason", exc)) or type(exc).__name__))
        except ValueError as exc:  # urllib's "unknown url type"
            reasons.append((url, f"not a URL ({exc})"))
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    raise DownloadFailed(filename, reasons)
