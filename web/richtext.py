"""Markdown written on the admin side, shown as HTML: converted at display time, then sanitised.

The stored text stays the Markdown source.  ``markdown`` turns it into HTML (raw HTML in it passes
through), then ``nh3`` (the Ammonia sanitiser) keeps only a small list of tags, only ``href`` and
``title`` on links, and only http, https and mailto URLs: no script, no event handlers, no
``javascript:`` links, no images (no tracking pixels, and the page's CSP would block them anyway).
"""

from __future__ import annotations

import markdown as markdown_lib
import nh3
from markupsafe import Markup

TAGS = {"p", "br", "hr", "strong", "em", "b", "i", "del", "code", "pre", "blockquote", "ul", "ol", "li", "a",
        "h3", "h4", "h5", "h6"}
ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
URL_SCHEMES = {"http", "https", "mailto"}
EXTENSIONS = ["sane_lists", "nl2br"]


def render(text: str | None) -> Markup:
    """Sanitised HTML for ``text`` (Markdown); empty for none."""
    if not text:
        return Markup("")
    html = markdown_lib.markdown(text, extensions=EXTENSIONS, output_format="html")
    # headings a writer marks with # or ## would outrank the page's own: they become h3 and h4
    html = html.replace("<h1>", "<h3>").replace("</h1>", "</h3>").replace("<h2>", "<h4>").replace("</h2>", "</h4>")
    return Markup(nh3.clean(html, tags=TAGS, attributes=ATTRIBUTES, url_schemes=URL_SCHEMES,
                            link_rel="noopener noreferrer nofollow", strip_comments=True))
