"""Pages in one language at a time, on one layout (`templates/web/layout.html`).

A page template `templates/web/NAME.html` extends the layout and fills its `title` and
`main` blocks. Its words come from `templates/LANG/web/words/*.toml` (every file of the
language merged; flat keys, `{name}` placeholders), through `t(key, **fmt)`. Autoescape is
on: nothing a list, a member or a post says is trusted as HTML.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from mailhub import dates
from mailhub.web.pages import html_environment
from mailhub.web.site import Site
from mailhub.web.visitor import LANGUAGES, Visitor

Words = dict[str, str]


class WordsError(Exception):
    """A words file that cannot be read, or two files giving one key."""


def load_words(directory: Path, lang: str) -> Words:
    """Every `templates/LANG/web/words/*.toml` of one language, merged."""
    merged: Words = {}
    for path in sorted((directory / lang / "web" / "words").glob("*.toml")):
        try:
            found = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise WordsError(f"{path}: {exc}") from None
        for key, value in found.items():
            if not isinstance(value, str):
                raise WordsError(f"{path}: {key} is not a string")
            if key in merged:
                raise WordsError(f"{path}: {key} is given by another words file too")
            merged[key] = value
    return merged


class Layout:
    """The templates and words of one templates directory (made once, kept)."""

    def __init__(self, directory: Path) -> None:
        self.env = html_environment(directory)
        self.words = {lang: load_words(directory, lang) for lang in LANGUAGES}

    def word(self, lang: str, key: str, **fmt: Any) -> str:
        """The word in `lang`; the other language's if this one lacks it (the keys test
        catches that), an error if neither has it."""
        text = self.words[lang].get(key)
        if text is None:
            text = next((w[key] for w in self.words.values() if key in w), None)
            if text is None:
                raise KeyError(f"no word {key!r}")
        return text.format(**fmt) if fmt else text


@functools.cache
def layout_for(directory: Path) -> Layout:
    return Layout(directory)


def prefix(site: Site) -> str:
    web_config = site.runtime.config.web
    return web_config.prefix if web_config is not None else ""


def url(site: Site, path: str) -> str:
    """A path of ours as the browser reaches it (under base_url's own path)."""
    return prefix(site) + path


def here(site: Site, request: web.Request) -> str:
    """This page's path and query as the browser reaches it, without `lang`."""
    query = [(k, v) for k, v in request.query.items() if k != "lang"]
    return url(site, request.path) + ("?" + urlencode(query) if query else "")


def signin_url(site: Site, next_path: str) -> str:
    return url(site, "/signin?next=" + quote(next_path, safe="/"))


def signin_redirect(site: Site, request: web.Request) -> web.HTTPSeeOther:
    """The 303 to the sign-in page, coming back here after (raise it)."""
    return web.HTTPSeeOther(signin_url(site, here(site, request)))


def switch_url(site: Site, request: web.Request, lang: str) -> str:
    query = [(k, v) for k, v in request.query.items() if k != "lang"] + [("lang", lang)]
    return url(site, request.path) + "?" + urlencode(query)


def iso(ts: float) -> str:
    """For `<time datetime=…>`."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def variables(site: Site, request: web.Request, visitor: Visitor) -> dict[str, Any]:
    """What every page template gets."""
    lay = layout_for(site.runtime.config.templates_dir)
    lang = visitor.lang

    def t(key: str, **fmt: Any) -> str:
        return lay.word(lang, key, **fmt)

    path_url: Callable[[str], str] = functools.partial(url, site)
    return {
        "t": t,
        "lang": lang,
        "other_lang": visitor.other_lang,
        "visitor": visitor,
        "csrf": visitor.csrf,
        "switch_url": switch_url(site, request, visitor.other_lang),
        "url": path_url,
        "here": here(site, request),
        # From the sign-in page itself, its own `next` (not a sign-in page within one).
        "signin_url": signin_url(
            site,
            request.query.get("next", "")
            if request.path.startswith("/signin")
            else here(site, request),
        ),
        "when": lambda ts: dates.format_datetime(ts, lang),
        "day": lambda ts: dates.format_date(ts, lang),
        "iso": iso,
        "domain": site.runtime.config.server.domain,
    }


def render_text(
    site: Site, request: web.Request, visitor: Visitor, template: str, **more: Any
) -> str:
    lay = layout_for(site.runtime.config.templates_dir)
    page = lay.env.get_template(f"web/{template}.html")
    return page.render(**variables(site, request, visitor), **more)


def render(
    site: Site,
    request: web.Request,
    visitor: Visitor,
    template: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **more: Any,
) -> web.Response:
    """`templates/web/TEMPLATE.html` in the visitor's language, as a response."""
    text = render_text(site, request, visitor, template, status=status, **more)
    return web.Response(status=status, text=text, content_type="text/html", headers=headers)


def not_found(site: Site, request: web.Request, visitor: Visitor) -> web.Response:
    """The one "not here" page (a list that does not exist, or that this visitor may not
    see: the same page, so it says nothing about which)."""
    return render(site, request, visitor, "not_found", status=404)


def forbidden(site: Site, request: web.Request, visitor: Visitor) -> web.Response:
    return render(site, request, visitor, "forbidden", status=403)
