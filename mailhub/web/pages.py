"""The HTML pages of the web side: each in both languages, in the order a list asks for.

`TEMPLATES/LANG/web/NAME.html` holds one language's half of a page (a fragment that sets
`title`, and `button` where the page has one); `TEMPLATES/web/page.html` lays the halves
out, each in an element with its own `lang`, then the page's single form. Autoescape is
on: a list's display name is written by an administrator, but nothing is trusted as HTML.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

# Welsh first unless a list says otherwise (a page for no list in particular: Welsh first).
DEFAULT_LANGUAGES = ("cy", "en")


def page_languages(language: str | None) -> tuple[str, ...]:
    """The languages of a page, first to last: the list's own (`cy+en`, `en`, …), then the
    other one, so every page is bilingual."""
    if not language:
        return DEFAULT_LANGUAGES
    named = tuple(language.split("+"))
    return named + tuple(lang for lang in DEFAULT_LANGUAGES if lang not in named)


@dataclass(frozen=True)
class Half:
    lang: str
    title: str
    body: Markup
    button: str


def html_environment(directory: Path) -> jinja2.Environment:
    """The templates of `directory` as every web page renders them: autoescaped (nothing
    is trusted as HTML), a missing variable an error."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


class Pages:
    def __init__(self, directory: Path) -> None:
        self.env = html_environment(directory)

    def half(self, name: str, lang: str, **variables: Any) -> Half:
        module = self.env.get_template(f"{lang}/web/{name}.html").make_module(variables)
        return Half(
            lang,
            str(getattr(module, "title", "")),
            Markup(str(module).strip()),
            str(getattr(module, "button", "")),
        )

    def render(
        self,
        name: str,
        languages: tuple[str, ...],
        *,
        form: dict[str, str] | None = None,
        **variables: Any,
    ) -> str:
        """The page `name` in `languages`; `form`: the hidden fields of its one button's
        POST to the page's own URL (None: no button)."""
        halves = [self.half(name, lang, **variables) for lang in languages]
        return self.env.get_template("web/page.html").render(
            lang=languages[0], halves=halves, form=form
        )
