"""Duplicate finding (pure): true pairs are one event, near misses are never merged."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.alerts import EVENT_UPDATED, AlertDraft
from monitor.app import dedupe_policy
from monitor.config import parse_config
from monitor.dedupe import (
    DedupePolicy,
    Event,
    History,
    Seen,
    dedupe_batch,
    find_original,
    fingerprint,
    item_entry,
    item_fingerprint,
    settle_amended,
)
from monitor.dedupe.fingerprint import band_keys, min_shared_bands, names, similarity
from monitor.errors import ConfigError
from monitor.models import Item
from tests.conftest import FIXED_NOW

POLICY = DedupePolicy()


@dataclass(frozen=True)
class Copy:
    title: str
    url: str
    summary: str = ""
    fields: dict[str, Any] = field(default_factory=dict)


def gnews(title: str, publisher: str, site: str, article: str = "CBMiXmh0dHBz") -> Copy:
    return Copy(
        title=f"{title} - {publisher}",
        url=f"https://news.google.com/rss/articles/{article}?oc=5",
        summary=f"{title}  {publisher}",
        fields={"source_title": publisher, "source_url": site},
    )


ICO_TITLE = "ICO fines facial recognition database company Clearview AI Inc more than £7.5m"
ICO_TEXT = (
    "The ICO has fined Clearview AI Inc £7,552,800 for using images of people in the UK, and "
    "elsewhere, that were collected from the web and social media to create a global online "
    "database that could be used for facial recognition."
)
WIRE_TEXT = (
    "Italy's data protection authority fined Clearview AI 20 million euros on Wednesday and "
    "ordered the company to delete data on Italians, the latest regulator to act against the "
    "facial recognition software company."
)
CNIL_TEMPLATE = (
    "On 12 September 2024, the restricted committee of the CNIL imposed a fine of 5 million "
    "euros on {company} for failing to obtain the consent of users before placing advertising "
    "cookies on their devices, and for making refusal harder than acceptance."
)
REGULATOR_TEMPLATE = (
    "The {regulator} has imposed a fine of 20 million euros on Clearview AI for collecting "
    "and processing biometric data of people on its territory without a legal basis, and "
    "ordered the company to delete the data."
)

TRUE_PAIRS = {
    "google news copy of the regulator's release (title + publisher domain)": (
        Copy(ICO_TITLE, "https://ico.org.uk/about-the-ico/media-centre/news/clearview/", ICO_TEXT),
        gnews(ICO_TITLE, "ICO", "https://ico.org.uk"),
    ),
    "google news copy of a publisher's own feed item": (
        Copy("Clearview AI fined in the UK", "https://www.bbc.co.uk/news/technology-61550776"),
        gnews("Clearview AI fined in the UK", "BBC", "https://www.bbc.co.uk"),
    ),
    "two google news queries, one article link": (
        gnews("Clearview AI fined £7.5m by UK watchdog", "The Guardian", "https://theguardian.com"),
        gnews("Clearview AI fined £7.5m by UK watchdog", "The Guardian", "https://theguardian.com"),
    ),
    "the same release in two sources, tracking decorations apart": (
        Copy("Sanction de 20 millions d'euros", "https://www.cnil.fr/fr/sanction-clearview"),
        Copy("Sanction : 20 millions", "http://www.cnil.fr/fr/sanction-clearview?utm_source=rss"),
    ),
    "syndicated wire copy, lightly edited": (
        Copy(
            "Clearview AI fined 20 million euros by Italian privacy regulator",
            "https://www.reuters.com/technology/clearview-ai-fined-italy-2022-03-09/",
            WIRE_TEXT,
        ),
        Copy(
            "Clearview AI fined 20 mln euros by Italian privacy regulator",
            "https://www.marketscreener.com/news/clearview-ai-fined-italy--39667",
            WIRE_TEXT.replace("on Wednesday ", "").replace("software company", "firm"),
        ),
    ),
    "syndicated copy with a site prefix in the title": (
        Copy(
            "Clearview AI fined 20 million euros by Italian privacy regulator",
            "https://www.reuters.com/technology/clearview-ai-fined-italy-2022-03-09/",
            WIRE_TEXT,
        ),
        Copy(
            "Tech news: Clearview AI fined 20 million euros by Italian privacy regulator",
            "https://www.usnews.com/news/technology/articles/2022-03-09/clearview",
            WIRE_TEXT,
        ),
    ),
}

ACME = Copy(
    "The CNIL fines ACME SAS 5 million euros for cookie violations",
    "https://www.cnil.fr/en/cookies-acme",
    CNIL_TEMPLATE.format(company="ACME SAS"),
)
GLOBEX = Copy(
    "The CNIL fines GLOBEX SA 5 million euros for cookie violations",
    "https://www.cnil.fr/en/cookies-globex",
    CNIL_TEMPLATE.format(company="GLOBEX SA"),
)
NEAR_MISSES = {
    "same regulator, same week, different company (templated release)": (ACME, GLOBEX),
    "same regulator, same week, different company, reported by two news sites": (
        replace(ACME, url="https://www.euractiv.com/section/privacy/news/cnil-acme/"),
        replace(GLOBEX, url="https://iapp.org/news/a/cnil-globex"),
    ),
    "same regulator, same week, different company, different amount": (
        Copy(
            "Il Garante sanziona Foodinho per 5 milioni di euro",
            "https://www.garanteprivacy.it/web/guest/home/docweb/-/docweb-display/docweb/1",
            "Il Garante ha sanzionato la società per il trattamento dei dati dei rider.",
        ),
        Copy(
            "Il Garante sanziona Deliveroo per 2,5 milioni di euro",
            "https://www.garanteprivacy.it/web/guest/home/docweb/-/docweb-display/docweb/2",
            "Il Garante ha sanzionato la società per il trattamento dei dati dei rider.",
        ),
    ),
    "same vendor, different regulator": (
        Copy(
            "CNIL fines Clearview AI 20 million euros",
            "https://www.cnil.fr/en/clearview",
            REGULATOR_TEMPLATE.format(regulator="CNIL"),
        ),
        Copy(
            "Hellenic DPA fines Clearview AI 20 million euros",
            "https://www.dpa.gr/en/clearview",
            REGULATOR_TEMPLATE.format(regulator="Hellenic DPA"),
        ),
    ),
    "same vendor, different regulator, via google news": (
        gnews("CNIL fines Clearview AI 20 million euros", "Reuters", "https://reuters.com", "A1"),
        gnews(
            "Greek DPA fines Clearview AI 20 million euros", "Reuters", "https://reuters.com", "B2"
        ),
    ),
    "two notices of one agency with the same generic title": (
        Copy("Enforcement notice issued under the Act", "https://ico.org.uk/action/1", "Notice."),
        Copy("Enforcement notice issued under the Act", "https://ico.org.uk/action/2", "Notice."),
    ),
    "one regulator's decisions of two years with a templated title": (
        Copy(
            "Sanctions prononcées par la CNIL en 2022 : le bilan de l'année",
            "https://www.cnil.fr/fr/bilan-2022",
            "La CNIL publie le bilan des sanctions prononcées et des mises en demeure.",
        ),
        Copy(
            "Sanctions prononcées par la CNIL en 2023 : le bilan de l'année",
            "https://www.cnil.fr/fr/bilan-2023",
            "La CNIL publie le bilan des sanctions prononcées et des mises en demeure.",
        ),
    ),
}


IT_WIRE = (
    "Il Garante per la privacy ha inflitto a Clearview AI una sanzione di 20 milioni di euro e "
    "ha ordinato alla società di cancellare i dati relativi a persone che si trovano in Italia, "
    "vietando ogni ulteriore raccolta."
)
NL_WIRE = (
    "De Autoriteit Persoonsgegevens (AP) heeft Uber een boete opgelegd van 290 miljoen euro "
    "omdat het bedrijf persoonsgegevens van Europese taxichauffeurs heeft doorgegeven naar de "
    "Verenigde Staten zonder passende bescherming."
)
FR_WIRE = (
    "La formation restreinte de la CNIL a sanctionné la société GOOGLE d'une amende de 150 "
    "millions d'euros pour ne pas avoir permis aux utilisateurs de refuser les cookies aussi "
    "facilement que de les accepter."
)
TRUE_PAIRS |= {
    "italian wire copy, reworded title": (
        Copy("Privacy: Garante sanziona Clearview AI per 20 milioni di euro",
             "https://www.ansa.it/sito/notizie/tecnologia/clearview.html", IT_WIRE),
        Copy("Garante privacy sanziona Clearview AI per 20 milioni",
             "https://www.ilsole24ore.com/art/clearview-garante",
             IT_WIRE.replace("per la privacy ", "").replace("ogni ulteriore", "qualsiasi")),
    ),
    "dutch copy on another news site": (
        Copy("Uber krijgt boete van 290 miljoen euro van privacywaakhond AP",
             "https://nos.nl/artikel/2487165-uber-boete", NL_WIRE),
        Copy("Uber krijgt boete van 290 miljoen van privacywaakhond",
             "https://www.nu.nl/tech/6322570/uber-boete.html", NL_WIRE.replace("Europese ", "")),
    ),
    "french copy, reworded title and accents": (
        Copy("Cookies : la CNIL sanctionne GOOGLE d'une amende de 150 millions d'euros",
             "https://www.lemonde.fr/pixels/article/cnil-google.html", FR_WIRE),
        Copy("Cookies: la Cnil inflige 150 millions d'euros d'amende à Google",
             "https://www.20minutes.fr/high-tech/cnil-google",
             FR_WIRE.replace("formation restreinte de la ", "")),
    ),
}  # fmt: skip


def _news_pair(title: str, text: str, a: str, b: str, sites: tuple[str, str]) -> tuple[Copy, Copy]:
    """One templated story about ``a`` and about ``b``, on two news sites."""
    return (
        Copy(title.format(a), f"https://{sites[0]}/a", text.format(a, company=a)),
        Copy(title.format(b), f"https://{sites[1]}/b", text.format(b, company=b)),
    )


NL_FINE = (
    "De Autoriteit Persoonsgegevens heeft {} een boete van 5 miljoen euro opgelegd omdat het "
    "bedrijf cookies plaatste zonder toestemming van gebruikers en weigeren moeilijker maakte."
)
FR_FINE = (
    "La formation restreinte de la CNIL a prononcé une amende de 5 millions d'euros à "
    "l'encontre de la société {} pour avoir déposé des cookies publicitaires sans le "
    "consentement des utilisateurs."
)
IT_FINE = (
    "Il Garante per la protezione dei dati personali ha inflitto a {} una sanzione di 5 milioni "
    "di euro per il trattamento illecito dei dati dei rider."
)
NEAR_MISSES |= {
    "same regulator, same week, a lowercase brand (eBay) and another company": _news_pair(
        "CNIL fines {} 5 million euros for cookie violations", CNIL_TEMPLATE,
        "eBay", "Globex", ("www.euractiv.com", "iapp.org"),
    ),
    "same regulator, same week, two camel-case brands (iRobot, eBay)": _news_pair(
        "CNIL fines {} 5 million euros for cookie violations", CNIL_TEMPLATE,
        "iRobot", "eBay", ("www.euractiv.com", "iapp.org"),
    ),
    "dutch: same regulator, same week, a domain-name brand (bol.com) and another company": (
        _news_pair("AP legt {} boete op van 5 miljoen euro voor cookies", NL_FINE,
                   "bol.com", "Coolblue", ("nos.nl", "www.nu.nl"))
    ),
    "french: same regulator, same week, different company, two news sites": _news_pair(
        "La CNIL sanctionne la société {} d'une amende de 5 millions d'euros", FR_FINE,
        "ACME", "GLOBEX", ("www.lemonde.fr", "www.lefigaro.fr"),
    ),
    "italian: same regulator, same week, different company, same amount": _news_pair(
        "Il Garante privacy sanziona {} per 5 milioni di euro", IT_FINE,
        "Foodinho", "Deliveroo", ("www.repubblica.it", "www.corriere.it"),
    ),
    "french: same vendor, different regulator": (
        Copy("Le Garante italien inflige une amende de 20 millions d'euros à Clearview AI",
             "https://www.lemonde.fr/a", "L'autorité a infligé une amende de 20 millions "
             "d'euros à Clearview AI pour la collecte de données biométriques sans base légale."),
        Copy("La CNIL inflige une amende de 20 millions d'euros à Clearview AI",
             "https://www.lefigaro.fr/b", "L'autorité a infligé une amende de 20 millions "
             "d'euros à Clearview AI pour la collecte de données biométriques sans base légale."),
    ),
    "dutch: same vendor, different regulator": (
        Copy("Italiaanse privacytoezichthouder beboet Clearview AI met 20 miljoen euro",
             "https://nos.nl/a", "De toezichthouder legde Clearview AI een boete van 20 "
             "miljoen euro op wegens het verzamelen van biometrische gegevens zonder rechtsgrond."),
        Copy("Griekse privacytoezichthouder beboet Clearview AI met 20 miljoen euro",
             "https://www.nu.nl/b", "De toezichthouder legde Clearview AI een boete van 20 "
             "miljoen euro op wegens het verzamelen van biometrische gegevens zonder rechtsgrond."),
    ),
}  # fmt: skip


def fp(copy: Copy) -> Any:
    return fingerprint(copy.title, copy.summary, "", copy.url, copy.fields)


def seen(copy: Copy, ref: str = "item:1") -> Seen:
    return Seen(ref, ref, {"source": "earlier", "title": copy.title}, fp(copy))


@pytest.mark.parametrize("case", sorted(TRUE_PAIRS))
def test_true_pairs_are_one_event(case: str) -> None:
    first, later = TRUE_PAIRS[case]
    assert find_original(fp(later), [seen(first)], POLICY) is not None
    assert find_original(fp(first), [seen(later)], POLICY) is not None  # either order


@pytest.mark.parametrize("case", sorted(NEAR_MISSES))
def test_near_misses_are_never_merged(case: str) -> None:
    first, later = NEAR_MISSES[case]
    assert find_original(fp(later), [seen(first)], POLICY) is None
    assert find_original(fp(first), [seen(later)], POLICY) is None


@pytest.mark.parametrize(
    "case",
    [
        "same regulator, same week, different company, reported by two news sites",
        "same vendor, different regulator",
        "same regulator, same week, a lowercase brand (eBay) and another company",
        "same regulator, same week, two camel-case brands (iRobot, eBay)",
        "dutch: same regulator, same week, a domain-name brand (bol.com) and another company",
        "french: same regulator, same week, different company, two news sites",
        "italian: same regulator, same week, different company, same amount",
        "dutch: same vendor, different regulator",
    ],
)
def test_near_misses_read_alike_and_only_the_names_keep_them_apart(case: str) -> None:
    first, later = NEAR_MISSES[case]
    a, b = fp(first), fp(later)
    assert a.site != b.site
    assert similarity(a.signature, b.signature) >= POLICY.threshold
    assert a.names - b.mentions and b.names - a.mentions


def test_match_kinds() -> None:
    cases = {
        "the same release in two sources, tracking decorations apart": "same_url",
        "google news copy of the regulator's release (title + publisher domain)": "same_title",
        "syndicated wire copy, lightly edited": "near",
    }
    for case, kind in cases.items():
        first, later = TRUE_PAIRS[case]
        verdict = find_original(fp(later), [seen(first)], POLICY)
        assert verdict is not None and verdict.match == kind, case


def test_a_higher_threshold_separates_a_light_edit() -> None:
    first, later = TRUE_PAIRS["syndicated wire copy, lightly edited"]
    score = similarity(fp(first).signature, fp(later).signature)
    assert 0.6 <= score < 1.0
    strict = DedupePolicy(threshold=min(score + 0.05, 1.0))
    assert find_original(fp(later), [seen(first)], strict) is None


def test_names_are_numbers_and_capitalised_words() -> None:
    assert names("CNIL fines Clearview AI €20,000,000 in 2022") == {
        "cnil",
        "clearview",
        "ai",
        "20000000",
        "2022",
    }
    assert names("le Garante sanziona 2,5 milioni") == {"garante", "2.5"}


# --- dedupe_batch: alerts and also_seen_in ---------------------------------------------------


def item(source: str, copy: Copy, key: str) -> Item:
    return Item(
        source=source,
        source_type="rss",
        key=key,
        content_hash="v1:x",
        title=copy.title,
        url=copy.url,
        summary_html=copy.summary,
        fields=copy.fields,
    )


def draft(it: Item, notifier: str) -> AlertDraft:
    ident = f"msg_{it.source}_{it.key}_{notifier}"
    return AlertDraft(ident, it.key, notifier, ("r",), {"alert_id": ident, "also_seen_in": []})


def prints(*items: Item) -> dict[str, Any]:
    return {i.key: item_fingerprint(i) for i in items}


def test_a_later_copy_attaches_to_the_stored_alert_instead_of_alerting() -> None:
    original, copy = TRUE_PAIRS[
        "google news copy of the regulator's release (title + publisher domain)"
    ]
    stored = Seen("item:7", "item:7", {"source": "ico", "match": "first"}, fp(original))
    history = History([stored], {"item:7": {"newsroom": "msg_old"}}, {"item:7": [stored.entry]})
    new = item("gnews", copy, "url:g1")
    outcome = dedupe_batch([new], prints(new), [draft(new, "newsroom")], history, POLICY, FIXED_NOW)
    assert outcome.drafts == []
    [attachment] = outcome.attachments
    assert attachment.alert_id == "msg_old"
    assert attachment.entry["source"] == "gnews" and attachment.entry["match"] == "same_title"
    assert [(link.item_key, link.group) for link in outcome.links] == [("url:g1", "item:7")]


def test_a_notifier_that_never_heard_of_the_event_gets_one_alert_listing_earlier_copies() -> None:
    original, copy = TRUE_PAIRS[
        "google news copy of the regulator's release (title + publisher domain)"
    ]
    stored = Seen("item:7", "item:7", {"source": "ico", "match": "first"}, fp(original))
    history = History([stored], {"item:7": {"newsroom": "msg_old"}}, {"item:7": [stored.entry]})
    new = item("gnews", copy, "url:g1")
    outcome = dedupe_batch(
        [new],
        prints(new),
        [draft(new, "newsroom"), draft(new, "legal")],
        history,
        POLICY,
        FIXED_NOW,
    )
    [fresh] = outcome.drafts
    assert fresh.notifier == "legal"
    assert fresh.data["also_seen_in"] == [{"source": "ico", "match": "first"}]
    assert [a.alert_id for a in outcome.attachments] == ["msg_old"]


def one_poll(pair: tuple[Copy, Copy]) -> Any:
    """Both copies new in one poll of one source, each planned an alert to newsroom."""
    a, b = item("wire", pair[0], "url:a"), item("wire", pair[1], "url:b")
    drafts = [draft(a, "newsroom"), draft(b, "newsroom")]
    return dedupe_batch([a, b], prints(a, b), drafts, History(), POLICY, FIXED_NOW)


def test_copies_within_one_poll_are_one_event() -> None:
    later = TRUE_PAIRS["syndicated wire copy, lightly edited"][1]
    outcome = one_poll(TRUE_PAIRS["syndicated wire copy, lightly edited"])
    [only] = outcome.drafts
    assert only.item_key == "url:a"
    [entry] = only.data["also_seen_in"]
    assert entry["url"] == later.url and entry["match"] == "near" and entry["seen_at"]
    assert outcome.attachments == []


def test_different_events_in_one_poll_both_alert() -> None:
    outcome = one_poll(
        NEAR_MISSES["same regulator, same week, different company (templated release)"]
    )
    assert [d.item_key for d in outcome.drafts] == ["url:a", "url:b"]
    assert outcome.links == []


def test_drafts_of_items_that_are_not_new_pass_through() -> None:
    a = item("cnil", NEAR_MISSES["same vendor, different regulator"][0], "url:a")
    updated = draft(a, "newsroom")
    outcome = dedupe_batch([], {}, [updated], History(), POLICY, FIXED_NOW)
    assert outcome.drafts == [updated]


def test_an_amended_item_stays_its_event() -> None:
    a = item("news", NEAR_MISSES["same vendor, different regulator"][0], "url:a")
    other = {"source": "reg", "match": "first"}
    event = Event({"newsroom": "msg_reg_newsroom"}, [other])
    told, new, amended = draft(a, "newsroom"), draft(a, "legal"), draft(a, "ops")
    amended = replace(amended, event_type=EVENT_UPDATED)
    elsewhere = draft(
        item("news", NEAR_MISSES["same vendor, different regulator"][1], "url:b"), "x"
    )
    kept = settle_amended([told, new, amended, elsewhere], {"url:a": event})
    # newsroom heard of the event through the regulator's copy: no second alert.created
    assert [(d.notifier, d.event_type) for d in kept] == [
        ("legal", "alert.created"),
        ("ops", "alert.updated"),
        ("x", "alert.created"),
    ]
    assert kept[0].data["also_seen_in"] == kept[1].data["also_seen_in"] == [other]
    assert kept[2] == elsewhere  # not an amended item: untouched


def test_item_entry_shape() -> None:
    a = item("cnil", NEAR_MISSES["same vendor, different regulator"][0], "url:a")
    assert item_entry(a, FIXED_NOW) == {
        "source": "cnil",
        "title": a.title,
        "url": a.url,
        "published": None,
        "seen_at": "2026-11-22T10:00:00Z",
    }


# --- configuration --------------------------------------------------------------------------


def monitor_problems(**monitor: Any) -> list[str]:
    raw = {
        "monitor": monitor,
        "sources": [{"name": "a", "type": "rss", "every": "1h", "url": "https://a.example/"}],
    }
    try:
        parse_config(raw, {}, path=Path("sources.toml"))
    except ConfigError as e:
        return e.problems
    return []


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"dedupe_threshold": 0}, "monitor: dedupe_threshold: Input should be greater than 0"),
        ({"dedupe_threshold": 1.5}, "monitor: dedupe_threshold: Input should be less than or"),
        ({"dedupe_window": "a week"}, "monitor: dedupe_window: 'a week' is not a duration"),
        ({"dedupe": "yes please"}, "monitor: dedupe: Input should be a valid boolean"),
        ({"dedup": True}, "monitor: dedup: unknown key"),
    ],
)
def test_bad_dedupe_settings_are_named(keys: dict[str, Any], message: str) -> None:
    [problem] = monitor_problems(**keys)
    assert problem.startswith(message)


def test_dedupe_settings_reach_the_policy() -> None:

    source = {"name": "a", "type": "rss", "every": "1h", "url": "https://a.example/"}
    on = parse_config(
        {"monitor": {"dedupe_threshold": 0.8, "dedupe_window": "2d"}, "sources": [source]},
        {},
        path=Path("sources.toml"),
    )
    off = parse_config({"monitor": {"dedupe": False}, "sources": [source]}, {}, path=Path("x"))
    assert dedupe_policy(on) == DedupePolicy(threshold=0.8, window=timedelta(days=2))
    assert dedupe_policy(off) is None


def test_a_recurring_title_a_week_apart_is_two_articles() -> None:
    column = gnews("Data protection roundup: the week in privacy", "IAPP", "https://iapp.org")

    def at(days: int) -> Any:
        return fingerprint(
            column.title, column.summary, "", f"https://news.google.com/a/{days}", column.fields,
            published=FIXED_NOW - timedelta(days=days),
        )  # fmt: skip

    last_week = Seen("item:1", "item:1", {}, at(7))
    assert find_original(at(0), [last_week], POLICY) is None
    yesterday = Seen("item:2", "item:2", {}, at(1))
    verdict = find_original(at(0), [yesterday], POLICY)
    assert verdict is not None and verdict.match == "same_title"


# SAM.gov writes each notice's summary from its fields ("Special Notice · DEPT OF … ·
# NAICS … · Response deadline …"): notices of one agency share most of their words.
_SAM_TEMPLATE = (
    "Special Notice · HOMELAND SECURITY, DEPARTMENT OF.US IMMIGRATION AND CUSTOMS "
    "ENFORCEMENT.ICE OFFICE OF ACQUISITION · Solicitation 70CMSD26R0001 · NAICS 541511 · "
    "Response deadline: 2026-12-01T21:00:00+00:00"
)
_SAM_TITLES = [
    "Notice of intent to sole source facial recognition licences",
    "Body worn camera storage and redaction services",
    "Janitorial services for the Dallas field office",
    "Translation and interpretation support in Spanish and Haitian Creole",
    "Mobile biometric enrolment kits for border patrol",
    "Cloud hosting of the case management system",
    "Armored vehicle maintenance at the El Paso facility",
    "Training on open source intelligence tradecraft",
]


def _sam_notice(number: int, title: str, description: str | None = None) -> Item:
    fields: dict[str, Any] = {"notice_id": f"n{number}", "agency": "HOMELAND SECURITY"}
    if description is not None:
        fields["description"] = description
    return Item(
        source="sam-dhs",
        source_type="sam",
        key=f"n{number}",
        content_hash=f"h{number}",
        title=title,
        url=f"https://sam.gov/opp/n{number}/view",
        summary_html=_SAM_TEMPLATE,
        fields=fields,
    )


def _candidate_pairs(prints: list[Any]) -> int:
    from monitor.dedupe.fingerprint import MIN_SHARED_BANDS

    return sum(
        1
        for i, a in enumerate(prints)
        for b in prints[i + 1 :]
        if len(a.bands & b.bands) >= MIN_SHARED_BANDS
    )


def test_a_templated_summary_makes_no_near_copy_candidates() -> None:
    """Compared on the template, different notices of one agency are candidates of each
    other (the dedupe history then loads and compares them all: quadratic); compared on
    title and description, none is."""
    notices = [_sam_notice(n, title) for n, title in enumerate(_SAM_TITLES)]
    on_template = [item_fingerprint(i) for i in notices]
    assert _candidate_pairs(on_template) >= len(notices)  # the cost this avoids is real
    prints = [item_fingerprint(i, templated_summary=True) for i in notices]
    assert _candidate_pairs(prints) == 0
    # the exact keys are kept: the same notice from a second search is still one event
    assert all(any(k.startswith("u:") for k in p.stored) for p in prints)
    copy = replace(notices[0], source="sam-ice", key="n0")
    seen = [Seen("item:1", "item:1", {}, prints[0])]
    verdict = find_original(item_fingerprint(copy, templated_summary=True), seen, POLICY)
    assert verdict is not None and verdict.match == "same_url"


def test_a_templated_summary_item_is_compared_on_its_description() -> None:
    description = (
        "The agency intends to award a sole source contract to Clearview AI for access to "
        "its facial recognition search platform under FAR 6.302-1 for twelve months."
    )
    a = item_fingerprint(_sam_notice(1, "Facial recognition", description), templated_summary=True)
    b = item_fingerprint(_sam_notice(2, "Facial recognition", description), templated_summary=True)
    c = item_fingerprint(_sam_notice(3, "Facial recognition"), templated_summary=True)
    assert a.signature and similarity(a.signature, b.signature) == 1.0
    assert not c.signature  # two words of title and no description: too little to compare
    assert "homeland" in a.mentions  # the template still counts for names and mentions


def test_comparing_only_items_that_share_keys_gives_the_verdicts_of_comparing_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """dedupe_batch looks up each new item's candidates by key; every true pair, near
    miss and the SAM notices, shuffled into one batch after a history, must come out as
    they do when every item is compared with every earlier one."""
    import random

    from monitor.dedupe import plan

    copies = [c for pair in [*TRUE_PAIRS.values(), *NEAR_MISSES.values()] for c in pair]
    rng = random.Random(9)
    rng.shuffle(copies)
    batch = [item(f"s{i % 3}", c, f"url:{i}") for i, c in enumerate(copies)]
    batch += [_sam_notice(100 + n, t) for n, t in enumerate(_SAM_TITLES)]
    stored, new = batch[: len(batch) // 3], batch[len(batch) // 3 :]
    seen = [Seen(f"item:{n}", f"item:{n}", {"n": n}, fp_) for n, fp_ in enumerate(
        item_fingerprint(i) for i in stored
    )]  # fmt: skip
    history = History(seen, {f"item:{n}": {"desk": f"msg_{n}"} for n in range(len(seen))})
    drafts = [draft(i, "desk") for i in new]

    def run() -> Any:
        return dedupe_batch(new, prints(*new), drafts, history, POLICY, FIXED_NOW)

    indexed = run()
    monkeypatch.setattr(plan._SeenIndex, "candidates", lambda self, _fp: list(self._seen))
    scanned = run()
    assert indexed.links == scanned.links and indexed.links  # some copies were found
    assert indexed.drafts == scanned.drafts
    assert indexed.attachments == scanned.attachments


@pytest.mark.parametrize(
    ("threshold", "bands"), [(0.3, 2), (0.5, 2), (0.55, 4), (0.6, 7), (0.8, 20), (1.0, 32)]
)
def test_candidates_need_the_bands_a_pair_at_the_threshold_cannot_lack(
    threshold: float, bands: int
) -> None:
    assert min_shared_bands(threshold) == bands
    assert DedupePolicy(threshold=threshold).min_bands == bands


def test_a_copy_at_the_threshold_with_the_fewest_whole_bands_is_still_found() -> None:
    """39 of 64 values equal (0.61 >= 0.6), spread so that only 7 bands are whole: the
    least a pair above the threshold can share. It is compared, and it is a copy."""
    a = tuple(range(1, 65))
    # the first value of 25 bands differs, both values of none: 64 - 25 = 39 equal
    b = tuple(v + 1000 if i % 2 == 0 and i < 50 else v for i, v in enumerate(a))
    assert similarity(a, b) >= POLICY.threshold
    assert len(band_keys(a) & band_keys(b)) == POLICY.min_bands == 7
    title = "Garante fines Clearview AI twenty million euros"
    first = fingerprint(title, "", "", "https://www.garanteprivacy.it/n/1", {}, a)
    later = Item(
        source="wire", source_type="rss", key="w1", content_hash="h", title=title,
        url="https://wire.example/clearview",
    )  # fmt: skip
    copy = fingerprint(title, "", "", later.url, {}, b)
    seen = [Seen("item:1", "item:1", {}, first)]
    verdict = find_original(copy, seen, POLICY)
    assert verdict is not None and verdict.match == "near"
    outcome = dedupe_batch([later], {later.key: copy}, [], History(seen=seen), POLICY, FIXED_NOW)
    assert [link.group for link in outcome.links] == ["item:1"]
