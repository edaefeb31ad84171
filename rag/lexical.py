"""Tokens for the lexical (BM25) side, and the curated query expansions it applies.

Exact terms matter here: "PD-1", "anti-PD-L1", "NCT04984096", "ECOG", "EGFR" survive as whole
tokens, and hyphenated terms also give their parts, so "anti-PD-1" matches "PD-1".
"""

from __future__ import annotations

import re
from functools import lru_cache

_TOKEN = re.compile(r"[a-z0-9]+(?:[-/.][a-z0-9]+)*")
_STOPWORDS = frozenset(
    """a an and are as at be been by can do does for from had has have if in into is it its
    may must no not of on or other than that the their then there these they this those to
    was were which who will with within would what trial trials study studies patient
    patients participant participants subject subjects""".split()
)
# "no", "not", "without" carry eligibility meaning for answers, but for ranking passages they
# only add noise: every criterion list is full of them.

# Curated expansions for drug classes and abbreviations: when a key phrase occurs in a query,
# its terms are added to the lexical query. Keys and terms are matched on tokens.
EXPANSIONS: dict[str, tuple[str, ...]] = {
    "pd-1 inhibitor": (
        "anti-pd-1", "pd-1", "pembrolizumab", "nivolumab", "camrelizumab", "sintilimab",
        "sindilimab", "tislelizumab", "toripalimab", "cemiplimab", "immune checkpoint inhibitor",
    ),
    "anti-pd-1": (
        "pd-1", "pembrolizumab", "nivolumab", "camrelizumab", "sintilimab", "sindilimab",
        "tislelizumab", "toripalimab", "checkpoint",
    ),
    "pd-l1 inhibitor": ("anti-pd-l1", "pd-l1", "atezolizumab", "durvalumab", "avelumab"),
    "checkpoint inhibitor": ("anti-pd-1", "anti-pd-l1", "anti-ctla-4", "pd-1", "pd-l1", "ctla-4"),
    "immunotherapy": ("immune checkpoint", "anti-pd-1", "anti-pd-l1", "pd-1", "pd-l1"),
    "ecog": ("performance status", "ps"),
    "performance status": ("ecog", "ps", "karnofsky"),
    "escc": ("esophageal squamous cell carcinoma", "oesophageal"),
    "esophageal squamous cell carcinoma": ("escc",),
    "nsclc": ("non-small cell lung cancer", "non-small-cell"),
    "non-small cell lung cancer": ("nsclc",),
    "sclc": ("small cell lung cancer",),
    "platelet": ("platelets", "plt"),
    "platelets": ("platelet", "plt"),
    "hemoglobin": ("haemoglobin", "hb", "hgb"),
    "neutrophil": ("neutrophils", "anc", "absolute neutrophil count"),
    "brain metastases": ("brain metastasis", "cns metastases", "central nervous system"),
    "hepatitis b": ("hbv", "hbsag"),
    "hepatitis c": ("hcv",),
    "hiv": ("human immunodeficiency virus",),
    "pregnant": ("pregnancy", "lactating", "breastfeeding", "breast-feeding"),
    "egfr": ("epidermal growth factor receptor", "egfr-tki"),
    "tki": ("tyrosine kinase inhibitor",),
    "alk": ("anaplastic lymphoma kinase",),
    "kidney function": ("creatinine", "creatinine clearance", "renal"),
    "liver function": ("bilirubin", "alt", "ast", "uln", "hepatic"),
    "life expectancy": ("survival", "expected survival"),
    "age": ("years", "old", "aged"),
    "prior": ("previous", "previously", "received", "past"),
    "previous": ("prior", "previously", "received"),
    "chemotherapy": ("chemo",),
    "radiotherapy": ("radiation", "irradiation"),
}  # fmt: skip


@lru_cache(maxsize=250_000)
def token_set(text: str) -> frozenset[str]:
    """tokenize(text) as a set, remembered: the same passages are read for many questions."""
    return frozenset(tokenize(text))


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens without stopwords; hyphenated tokens also give their parts."""
    tokens: list[str] = []
    for match in _TOKEN.finditer(text.casefold()):
        token = match.group().strip(".")
        if not token or token in _STOPWORDS:
            continue
        tokens.append(token)
        if "-" in token or "/" in token:
            parts = re.split(r"[-/]", token)
            tokens.extend(p for p in parts if p and p not in _STOPWORDS)
            # "anti-pd-1" also gives "pd-1": a hyphenated term matches its tail.
            tokens.extend("-".join(parts[i:]) for i in range(1, len(parts) - 1))
    return tokens


def whole_tokens(text: str) -> list[str]:
    """Tokens as written, without the parts of hyphenated ones: "anti-pd-1" stays whole."""
    found = (m.group().strip(".") for m in _TOKEN.finditer(text.casefold()))
    return [t for t in found if t and t not in _STOPWORDS]


def expansion_terms(text: str) -> list[str]:
    """The curated terms of every key phrase that occurs in the text as whole words."""
    low = text.casefold()
    return [
        term
        for key, terms in EXPANSIONS.items()
        if re.search(rf"(?<![\w-]){re.escape(key)}(?![\w-])", low)
        for term in terms
    ]


def expand(query: str) -> list[str]:
    """The query's tokens plus those of every expansion whose key phrase occurs in it."""
    tokens = tokenize(query)
    extra = [t for term in expansion_terms(query) for t in tokenize(term)]
    return tokens + [t for t in extra if t not in tokens]
