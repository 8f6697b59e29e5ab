"""A stylesheet written into the page, for a page whose first frame should not wait for it.

A page that links its stylesheet shows nothing until a second request has come back: the
browser finds the ``<link>`` only once the HTML is in, and holds the first frame until the sheet
is parsed. The dashboard writes ``app.css`` into a ``<style>`` element instead, so its first
frame waits for one response, not two (docs/ui.md, "Page load"). That costs each dashboard page
the sheet's bytes (~5 KB with gzip); other pages keep the linked, cached-for-good copy.

The text is read once, when the app is made: like ``static_url``'s hashes, it changes with a
restart.
"""

from __future__ import annotations

from pathlib import Path


class InlineStylesheet:
    """The text of one of our own stylesheets, checked fit to go inside ``<style>``."""

    def __init__(self, path: Path) -> None:
        text = path.read_text(encoding="utf-8")
        # The HTML parser ends the element at the first "</style", whatever follows; our sheets
        # never need one, so one is a mistake to catch at start, not a page to break.
        if "</style" in text.lower():
            raise ValueError(f"{path.name} contains '</style' and cannot be written into a page")
        if "url(" in text:
            # Relative URLs in it would resolve against the page's URL, not the sheet's.
            raise ValueError(f"{path.name} refers to url(...) and cannot be written into a page")
        self.text = text
