"""Secrets out of what gets recorded: URLs with credentials, and values too long to log.

In:  strings about to be logged, written to a manifest or sent to MLflow (params, input
     names, a teacher's endpoint). Out: the same strings with every URL's ``user:pass@``
     replaced by ``***@`` and the values of credential-like query parameters (presigned
     S3/GCS/Azure URLs: ``X-Amz-Signature``, ``X-Amz-Credential``, ``sig``, ``token``,
     ``key``, ...) replaced by ``***``; and, for MLflow, values over its param length limit
     replaced by a prefix and their sha256 (MLflow refuses longer ones).
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qsl, urlencode, urlsplit

MLFLOW_PARAM_LIMIT = 6000  # mlflow.utils.validation.MAX_PARAM_VAL_LENGTH
MASK = "***"
# query parameters that carry a credential, matched case-insensitively on the whole name
_SECRET_PARAM = re.compile(
    r"x-amz-(signature|credential|security-token)|x-goog-(signature|credential)|"
    r"sig|signature|token|access_token|id_token|api[-_]?key|key|password|passwd|pwd|secret|"
    r"client_secret|auth|authorization|code", re.IGNORECASE)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")


def redact_url(url: str) -> str:
    """``url`` without the credentials it carries (userinfo, secret query values)."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError:  # not parseable as a URL: hide all of it but the scheme
        return url.split("://", 1)[0] + "://" + MASK
    changed = "@" in netloc
    if changed:
        netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_PARAM.fullmatch(k) for k, _ in pairs):
            changed = True
            query = urlencode([(k, MASK if _SECRET_PARAM.fullmatch(k) else v)
                               for k, v in pairs], safe="*")
    if not changed:
        return url  # as given: a round trip through urlunsplit may drop an empty "//"
    return (f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
            + (f"#{parts.fragment}" if parts.fragment else ""))


def redact(text: str) -> str:
    """``text`` with every URL in it passed through :func:`redact_url`."""
    return _URL.sub(lambda m: redact_url(m.group(0)), text) if "://" in text else text


def param_value(value: str, limit: int = MLFLOW_PARAM_LIMIT) -> str:
    """A value MLflow accepts: redacted, and if still over ``limit`` characters, its start
    and the sha256 of the whole (enough to tell two values apart, and to check one)."""
    value = redact(value)
    if len(value) <= limit:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    tail = f"... ({len(value)} chars, sha256 {digest})"
    return value[:limit - len(tail)] + tail


def params(flat: dict[str, str], limit: int = MLFLOW_PARAM_LIMIT) -> dict[str, str]:
    """:func:`param_value` of every value of a flat params dict."""
    return {key: param_value(str(value), limit) for key, value in flat.items()}
