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
    "plt": ("platelet", "platelets"),
    "haemoglobin": ("hemoglobin", "hb", "hgb"),
    "hb": ("hemoglobin", "haemoglobin"),
    "anc": ("neutrophil", "neutrophils", "absolute neutrophil count"),
    "mets": ("metastases", "metastasis", "metastatic"),
    "metastases": ("metastasis", "metastatic"),
    "metastatic": ("metastases", "metastasis"),
    "metastasis": ("metastases", "metastatic"),
    "bmi": ("body mass index",),
    "body mass index": ("bmi",),
    "survive": ("life expectancy", "survival", "expected survival"),
    "expected to live": ("life expectancy", "survival", "expected survival"),
    "expected survival": ("life expectancy",),
    "survival time": ("life expectancy",),
    "t1dm": ("type 1 diabetes", "type i diabetes"),
    "t2dm": ("type 2 diabetes", "type ii diabetes"),
    "type 1 diabetes": ("type i diabetes", "t1dm"),
    "type 2 diabetes": ("type ii diabetes", "t2dm"),
    "tb": ("tuberculosis",),
    "pembro": ("pembrolizumab",),
    "nivo": ("nivolumab",),
    "atezo": ("atezolizumab",),
    "durva": ("durvalumab",),
    "sintilimab": ("sindilimab",),
    "sindilimab": ("sintilimab",),
    "platelets": ("platelet", "plt"),
    "hemoglobin": ("haemoglobin", "hb", "hgb"),
    "liver": ("hepatic", "bilirubin", "alt", "ast"),
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


# Words of an eligibility topic that frame it rather than name what it is about: a criterion
# must share another word with the topic to speak to it.
GENERIC = frozenset(
    """prior previous previously treatment treatments therapy therapies inhibitor inhibitors
    history received receive receiving use used using drug drugs agent agents past any already
    had have having been patients patient people person someone accepted before anti positive
    negative treated treat treating disease diseases disorder disorders condition conditions
    illness""".split()
) | frozenset(
    # Qualifiers: they say which cases of a thing, not what the thing is ("active hepatitis B"
    # must meet "hepatitis", not any criterion saying "active").
    """active symptomatic uncontrolled untreated known current chronic severe stable controlled
    significant clinically serious acute mild moderate""".split()
)

# Abbreviations and the names they stand for, and spellings of one word: a text naming either
# matches a question naming the other (trial names, listing filters).
ABBREVIATIONS: dict[str, str] = {
    "escc": "esophageal squamous cell carcinoma",
    "nsclc": "non-small cell lung cancer",
    "sclc": "small cell lung cancer",
    "hcc": "hepatocellular carcinoma",
    "crc": "colorectal cancer",
    "rcc": "renal cell carcinoma",
    "aml": "acute myeloid leukemia",
    "cll": "chronic lymphocytic leukemia",
    "copd": "chronic obstructive pulmonary disease",
    "hiv": "human immunodeficiency virus",
    "nhl": "non-hodgkin lymphoma",
    "ild": "interstitial lung disease",
    "rt": "radiotherapy",
    "sbrt": "stereotactic body radiotherapy",
}
SPELLINGS: dict[str, str] = {
    "oesophageal": "esophageal",
    "oesophagus": "esophagus",
    "haemoglobin": "hemoglobin",
    "tumour": "tumor",
    "tumours": "tumors",
    "randomised": "randomized",
    "sintilimab": "sindilimab",
    "carcinoma": "cancer",
    "carcinomas": "cancer",
    "cancers": "cancer",
    "neoplasm": "cancer",
    "neoplasms": "cancer",
    "leukaemia": "leukemia",
    "paediatric": "pediatric",
    "radiation": "radiotherapy",
    "chemo": "chemotherapy",
}


@lru_cache(maxsize=250_000)
def name_tokens(text: str) -> frozenset[str]:
    """The tokens of a name as matched across spellings and abbreviations: 'Oesophageal
    Squamous Cell Carcinoma' also gives 'escc', 'esophageal' and 'cancer'."""
    tokens = [SPELLINGS.get(t, t) for t in tokenize(text)]
    folded = _phrase(text)
    extra = [a for name, a in _ABBREVIATED if name in folded]
    return frozenset(tokens + extra)


def _phrase(text: str) -> str:
    """Whole tokens in their common spelling, between spaces: " non-small cell lung cancer "
    holds no " small cell lung cancer " (tokenize's parts would put one there), and
    "Non-Hodgkin's Lymphoma" is " non-hodgkin lymphoma "."""
    words = whole_tokens(re.sub(r"['’]s\b", "", text))
    return f" {' '.join(SPELLINGS.get(t, t) for t in words)} "


# Endings folded to match a word's forms ("pregnancy" ~ "pregnant", "lactation" ~
# "lactating"), longest first; a stem keeps at least STEM_MIN letters.
_ENDINGS = (
    "ations", "ation", "ating", "ances", "ancy", "ance", "ants", "ant", "ings", "ing", "ies",
    "ied", "ed", "es", "s",
)  # fmt: skip
STEM_MIN = 4


def stem(token: str) -> str:
    """A crude stem: the token without one common ending (hyphenated tokens stay whole)."""
    if "-" in token or not token.isalpha():
        return token
    for ending in _ENDINGS:
        if token.endswith(ending) and len(token) - len(ending) >= STEM_MIN:
            return token[: -len(ending)]
    return token


@lru_cache(maxsize=250_000)
def stem_set(text: str) -> frozenset[str]:
    """The stems of a text's tokens, remembered like token_set."""
    return frozenset(stem(t) for t in token_set(text))


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


# The names ABBREVIATIONS stand for, as _phrase gives them, with their abbreviation.
_ABBREVIATED = [(_phrase(name), abbreviation) for abbreviation, name in ABBREVIATIONS.items()]


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


@lru_cache(maxsize=250_000)
def fold(text: str) -> str:
    """Lower case, punctuation to spaces, one space between words: for phrase matching."""
    return " ".join(re.sub(r"[^\w]+", " ", text.casefold()).split())
