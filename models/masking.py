"""Masking secrets (SPEC §1): channel URLs carry tokens — webhook keys, passwords, access
tokens — that must never reach a log line, a stored error, an artifact or the doctor's output.

:func:`mask` shows a channel URL with every secret part as ``****`` (the scheme and host stay,
so a person can tell which channel it is); :func:`secrets_of` lists the secret parts of a URL;
:func:`mask_text` cleans free text (an exception, a plugin's answer) of URLs, key=value
secrets, bearer tokens and any secret given.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import unquote

STARS = "****"


_URL_RE = re.compile(r"^(?P<schema>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<rest>.*)$", re.S)
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>()\[\]{}，。；]+")
_SENSITIVE_KEY = re.compile(
    r"(token|key|secret|pass|pwd|auth|sign|credential|session|cookie|bearer|apikey)", re.I
)
_KV_IN_TEXT = re.compile(
    r"(?i)\b([\w.\-+]*(?:token|key|secret|passw(?:or)?d|pwd|sign(?:ature)?|apikey|auth)[\w.\-]*)"
    r"(\s*[=:]\s*)([^&\s'\",;)]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{6,}")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?$")
_TOKENISH = re.compile(r"^[A-Za-z0-9_\-.=~%]+$")


def _is_host(host: str) -> bool:
    """A real network host (kept visible) rather than a token in the host position."""
    h = host.strip().lower()
    if not h:
        return False
    if h == "localhost" or _IPV4.match(h) or (h.startswith("[") and h.endswith("]")):
        return True
    labels = h.rstrip(".").split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return False
    return labels[-1].isalpha() and len(labels[-1]) >= 2


def _is_tokenish(segment: str) -> bool:
    """A path segment that looks like a credential (long, letters mixed with digits)."""
    seg = unquote(segment)
    if not seg or not _TOKENISH.match(seg):
        return False
    has_alpha = any(c.isalpha() for c in seg)
    has_digit = any(c.isdigit() for c in seg)
    return (len(seg) >= 8 and has_alpha and has_digit) or (len(seg) >= 24 and has_alpha)


@dataclass
class _Parts:
    schema: str
    user: str | None
    password: str | None  # None: no ':' in the userinfo
    host: str
    port: str | None
    path: list[str]
    query: list[tuple[str, str | None]]
    fragment: str | None


def _split(url: str) -> _Parts | None:
    m = _URL_RE.match(url.strip())
    if not m:
        return None
    rest = m.group("rest")
    fragment = None
    if "#" in rest:
        rest, fragment = rest.split("#", 1)
    query_s = ""
    if "?" in rest:
        rest, query_s = rest.split("?", 1)
    netloc, _slash, path_s = rest.partition("/")
    user = password = None
    if "@" in netloc:
        userinfo, _at, netloc = netloc.rpartition("@")
        user, colon, pw = userinfo.partition(":")
        password = pw if colon else None
    host, port = netloc, None
    if not netloc.startswith("[") and ":" in netloc:
        host, _c, port = netloc.partition(":")
    elif netloc.startswith("[") and "]:" in netloc:
        host, _c, port = netloc.partition("]:")
        host += "]"
    query: list[tuple[str, str | None]] = []
    for pair in query_s.split("&") if query_s else []:
        k, eq, v = pair.partition("=")
        query.append((k, v if eq else None))
    path = path_s.split("/") if _slash else []
    return _Parts(m.group("schema"), user, password, host, port, path, query, fragment)


def mask(url: str) -> str:
    """``url`` with its tokens, passwords and keys replaced by ``****``.

    ``json://127.0.0.1:9000/p`` is unchanged; ``dingtalk://SECRET@TOKEN/138…`` gives
    ``dingtalk://****@****/138…``; ``mailtos://user:pass@host`` gives
    ``mailtos://user:****@host``; sensitive query values (``?key=``, ``token=``, …) and
    credential-like path segments are masked. A string without ``://`` (a tag) is
    returned unchanged.
    """
    if not isinstance(url, str) or "://" not in url:
        return url
    p = _split(url)
    if p is None:
        return _mask_free_text(url)
    out = f"{p.schema}://"
    if p.user is not None:
        if p.password is not None:
            out += f"{p.user}:{STARS if p.password else ''}@"
        else:
            out += f"{STARS if p.user else ''}@"
    out += p.host if _is_host(p.host) or not p.host else STARS
    if p.port is not None:
        out += ":" + (p.port if p.port.isdigit() or not p.port else STARS)
    if p.path:
        out += "/" + "/".join(STARS if _is_tokenish(seg) else seg for seg in p.path)
    if p.query:
        pairs = []
        for k, v in p.query:
            if v is None:
                pairs.append(k)
            elif v and _SENSITIVE_KEY.search(k):
                pairs.append(f"{k}={STARS}")
            else:
                pairs.append(f"{k}={v}")
        out += "?" + "&".join(pairs)
    if p.fragment is not None:
        out += "#" + (STARS if p.fragment else "")
    return out


def secrets_of(url: str) -> list[str]:
    """The secret pieces of ``url`` (what :func:`mask` hides), raw and unquoted."""
    p = _split(url) if isinstance(url, str) and "://" in url else None
    if p is None:
        return []
    found: list[str] = []
    if p.user and p.password is None:
        found.append(p.user)
    if p.password:
        found.append(p.password)
    if p.host and not _is_host(p.host):
        found.append(p.host)
    if p.port and not p.port.isdigit():
        found.append(p.port)
    found += [seg for seg in p.path if _is_tokenish(seg)]
    found += [v for k, v in p.query if v and _SENSITIVE_KEY.search(k)]
    if p.fragment:
        found.append(p.fragment)
    out: list[str] = []
    for s in found:
        for variant in (s, unquote(s)):
            if len(variant) >= 3 and variant not in out:
                out.append(variant)
    return out


def _mask_free_text(text: str) -> str:
    text = _BEARER.sub(lambda m: f"{m.group(1)} {STARS}", text)
    return _KV_IN_TEXT.sub(lambda m: f"{m.group(1)}{m.group(2)}{STARS}", text)


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Free text (an error message, a log line) with URLs masked, the given secret
    strings removed and ``key=value`` credentials hidden."""
    if not text:
        return ""
    text = str(text)
    for s in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        text = text.replace(s, STARS)
    text = _URL_IN_TEXT.sub(lambda m: mask(m.group(0)), text)
    return _mask_free_text(text)
