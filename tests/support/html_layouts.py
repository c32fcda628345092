"""The selectors for each golden listing page in tests/data/html/ (one per regulator layout)."""

from __future__ import annotations

from typing import Any

LAYOUTS: dict[str, dict[str, Any]] = {
    "ico_news": {
        "url": "https://ico.org.uk/about-the-ico/media-centre/news-and-blogs/",
        "content_type": "text/html; charset=utf-8",
        "config": {
            "language": "en-GB",
            "item": "ul.listing > li.listing__item",
            "title": "h3.card__title",
            "link": "h3.card__title a@href",
            "date": "time",
            "summary": "p.card__summary",
        },
    },
    "cnil_actualites": {
        "url": "https://www.cnil.fr/fr/actualites",
        "content_type": "text/html; charset=UTF-8",
        "config": {
            "item": "div.view-actualites div.views-row",
            "title": "h2.titre",
            "link": "h2.titre a@href",
            "date": "span.date",
            "summary": "div.chapo",
        },
    },
    "ap_nieuws": {
        "url": "https://autoriteitpersoonsgegevens.nl/actueel",
        "content_type": "text/html",
        "config": {
            "language": "nl",
            "item": "section.news-overview a.news-item",
            "title": ".news-item__title",
            "link": "@href",
            "date": ".news-item__date",
            "summary": ".news-item__intro",
        },
    },
    "garante_newsletter": {
        "url": "https://www.garanteprivacy.it/web/guest/home/stampa-comunicazione/newsletter",
        "content_type": "text/html",  # and the page declares no charset either
        "config": {
            "language": "it",
            "item": "div.elenco-newsletter div.scheda-newsletter",
            "title": "h4",
            "link": "h4 a@href",
            "date": "p.data-newsletter",
            "summary": "div.abstract",
        },
    },
}
