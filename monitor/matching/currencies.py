"""ISO 4217 currency codes, and the symbols and words that name a currency in text.

The codes are the active ISO 4217 list (2025). ``amount>=1e6 EUX`` is a config
error because EUX is not among them.
"""

from __future__ import annotations

__all__ = ["CODES", "NAMES", "SYMBOLS"]

CODES: frozenset[str] = frozenset(
    {
     "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
     "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
     "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
     "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ",
     "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
     "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR",
     "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
     "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN",
     "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR",
     "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB",
     "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS",
     "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
    }
)  # fmt: skip

# Symbols, longest first so "US$" wins over "$". A bare "$" is read as USD.
SYMBOLS: dict[str, str] = {
    "US$": "USD",
    "A$": "AUD",
    "C$": "CAD",
    "NZ$": "NZD",
    "HK$": "HKD",
    "€": "EUR",
    "£": "GBP",
    "¥": "JPY",
    "$": "USD",
}

# Currency words in English, French, Dutch, German, Italian and Spanish, folded
# (lower case; Spanish with and without its accent). Plurals and the Dutch "euro's" included.
NAMES: dict[str, str] = {
    "euro": "EUR",
    "euros": "EUR",
    "euro's": "EUR",
    "dollar": "USD",
    "dollars": "USD",
    "us dollars": "USD",
    "us-dollar": "USD",
    "dollari": "USD",
    "dolares": "USD",
    "dólares": "USD",
    "dólar": "USD",
    "dollaro": "USD",
    "pound": "GBP",
    "pounds": "GBP",
    "pounds sterling": "GBP",
    "sterling": "GBP",
    "livres sterling": "GBP",
    "sterline": "GBP",
    "pfund": "GBP",
    "swiss francs": "CHF",
    "francs suisses": "CHF",
    "franken": "CHF",
    "yen": "JPY",
}
