"""Where each vendor reaches the service: the webhook URL to paste, and where its secret
goes. One place for the start-up banner, ``receiver credentials`` and the inspector."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from .mapping import CompiledMapping


@dataclass(frozen=True)
class WebhookURL:
    source: str
    url: str
    """Without the secret."""
    setting: str
    """The environment variable holding the secret (RECEIVER_KARTRA_TOKEN, …)."""
    placement: str
    """Where the secret goes: ``query``, ``header``, ``bearer`` or ``field`` (the mapping's
    first credential location)."""
    name: str
    """The query parameter, header or field that carries it."""

    def paste(self, secret: str) -> str:
        """What to paste into the vendor: the URL, with the secret when it rides in it."""
        if self.placement == "query":
            return f"{self.url}?{urlencode({self.name: secret})}"
        return self.url

    def line(self, secret: str | None) -> str:
        """The URL and, beside it, where the secret goes (the start-up banner's line);
        ``None`` shows the setting's name in its place."""
        shown = f"<{self.setting}>" if secret is None else secret
        if self.placement == "query":
            return self.paste(secret) if secret is not None else f"{self.url}?{self.name}={shown}"
        if self.placement == "header":
            return f"{self.url}   (header {self.name}: {shown})"
        if self.placement == "field":
            return f"{self.url}   (field {self.name}={shown})"
        return f"{self.url}   (Authorization: Bearer {shown})"


def webhook_urls(mappings: Mapping[str, CompiledMapping], base: str) -> list[WebhookURL]:
    """One URL per source, sorted by source: its ingest route under ``/hooks/{source}``."""
    out = []
    for name, m in sorted(mappings.items()):
        route = next((r for r in m.envelope.routes if r.responder == "ingest"), None)
        path = "" if route is None or route.path in ("", "/") else route.path
        loc = m.credential.locations[0]
        out.append(WebhookURL(name, f"{base}/hooks/{name}{path}", m.credential.setting, loc.kind, loc.name))
    return out
