"""Criterion text -> typed facts: what a criterion is about, what it does with a patient who
has it, under which qualifiers, and the numeric limits it sets.

Typed at index time (rag.store keeps them beside the chunks), so a corpus-wide question reads
facts instead of re-reading every criterion:

- a **mention** is a concept from the curated table below (a drug class, a biomarker, a
  condition) named in the criterion, with its direction for a patient who has it (required,
  excluded, allowed), the qualifiers that narrow it ("untreated", "requiring steroids",
  "within 4 weeks", a viral-load definition, a treatment setting) and the span of its words;
- a **limit** is a numeric range an eligible patient must be in (ECOG <= 1, platelets >= 100
  x 10^9/L, age 18-75, at least 4 weeks since a treatment), read the eligible way round: an
  exclusion "platelets < 100" is the limit "platelets >= 100";
- an **exception** is the words an exclusion carves back in ("except vitiligo").

Each fact keeps the character span of its words inside the criterion text.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from rag.types import Trial

Direction = Literal["required", "excluded", "allowed"]
FACTS_VERSION = 10  # bump when the rules change: an index typed by older rules is retyped

# The curated concepts: key -> surface forms (regex, case-insensitive). A concept's parent is
# broader: a criterion about the parent speaks to the child ("no anticancer therapy within 4
# weeks" speaks to prior anti-PD-1 therapy), never the other way round.
_PD1_DRUGS = (
    r"nivolumab|pembrolizumab|atezolizumab|durvalumab|avelumab|cemiplimab|camrelizumab|"
    r"sintilimab|sindilimab|tislelizumab|toripalimab|penpulimab|serplulimab|adebrelimab|"
    r"sugemalimab|envafolimab|dostarlimab|retifanlimab|benmelstobart|ivonescimab|cadonilimab|"
    r"keytruda|opdivo|tecentriq|imfinzi|bavencio|libtayo|tyvyt|jemperli|"
    # the short names clinicians write ("s/p pembro", "on nivo"); "ipi" is left out, as the
    # International Prognostic Index is written so too
    r"(?:pembro|nivo|atezo|durva)\b"
)
# "viral hepatitis", "viral, alcoholic, or other hepatitis": B and C both (only "viral" is
# the span, so "autoimmune hepatitis" beside it is still named)
_VIRAL_HEPATITIS = (
    r"viral(?=(?:,?\s+(?:\w+,?\s+){0,2}?(?:or|and)\s+(?:\w+\s+)?)?\s*hepatitis(?!\s*[a-e]\b))"
)
CONCEPTS: dict[str, str] = {
    "pd1_pdl1": (
        r"(?:anti[-\s]?)?pd[-\s]?(?:l)?[-\s]?1\b(?!\s*(?:expression|tps|positive|negative|"
        r"status|high|low|≥|>=|<|>|test|score|level|tumou?r proportion))(?:\s*/\s*"
        r"(?:pd[-\s]?l[-\s]?1|l1))?(?:\s*(?:axis\s+)?(?:inhibitors?|antibod(?:y|ies)|blockade|"
        r"blockers?|agents?|therapy|drugs?|treatment))?|"
        r"programmed (?:cell )?death[- ](?:ligand[- ])?"
        rf"1\s+(?:inhibitors?|antibod(?:y|ies))|{_PD1_DRUGS}"
    ),
    "checkpoint_inhibitor": (
        r"(?:immune[-\s]|immuno[-\s]?)?checkpoint[-\s](?:inhibitors?|blockade|blockers?|"
        r"therap(?:y|ies))|"
        r"\b(?:icis?|cpis?)\b|anti[-\s]?ctla[-\s]?4|ctla[-\s]?4\s+(?:inhibitors?|antibod(?:y|ies))|"
        r"ipilimumab|tremelimumab|immuno[-\s]?therap(?:y|ies)|immune[- ]oncology|"
        r"t[-\s]cell co[-\s]?stimulation|checkpoint pathways"
    ),
    "egfr_tki": (
        r"egfr[-\s]?tkis?\b|egfr[-\s](?:tyrosine[-\s]kinase\s+)?inhibitors?|"
        r"egfr[-\s]targe?ting|(?:epidermal growth factor receptor|egfr)\)?\s*(?:\([^)]{0,12}\)\s*)?"
        r"tyrosine[-\s]kinase[-\s]inhibitors?|gefitinib|erlotinib|afatinib|osimertinib|"
        r"dacomitinib|icotinib|almonertinib|aumolertinib|furmonertinib|befotertinib|"
        r"lazertinib|amivantamab|sunvozertinib|mobocertinib|poziotinib|third[-\s]generation tkis?"
    ),
    "alk_tki": (
        r"alk[-\s]?tkis?\b|alk[-\s](?:tyrosine[-\s]kinase\s+)?inhibitors?|crizotinib|alectinib|"
        r"ceritinib|brigatinib|lorlatinib|ensartinib|iruplinalkib|envonalkib"
    ),
    "chemotherapy": (
        r"chemo[-\s]?therap(?:y|ies)|chemotherapeutic|chemo\b|chemoradi\w*|radiochemo\w*|cytotoxic|"
        r"platinum|cisplatin|"
        r"carboplatin|docetaxel|paclitaxel|pemetrexed|gemcitabine|etoposide|vinorelbine"
    ),
    "systemic_therapy": (
        r"(?:systemic|anti[-\s]?(?:cancer|tumou?r|neoplastic)|antineoplastic|anticancer|"
        r"antitumou?r|cancer|oncologic)\s+(?:therap(?:y|ies)|treatments?|drugs?|agents?|"
        r"medications?|regimens?)|investigational\s+(?:drugs?|agents?|products?|therap(?:y|ies))|"
        r"antibody[-\s]drug\s+conjugates?|\badcs?\b|"
        r"(?:previously|systemically)[-\s]+untreated|treatment[-\s]na[iï]ve"
    ),
    "radiotherapy": (
        r"radio[-\s]?therap(?:y|ies)|(?<!ultraviolet\s)(?<!ultraviolet\sa\s)(?<!uv\s)radiation(?!\s+(?:pneumon|dermat|o?esophag|fibros|recall|"
        r"induced|injur|toxicit|enteritis|proctitis|myelitis|necrosis))(?:\s+therapy)?|irradiat\w*|\brt\b|"
        r"stereotactic|sbrt|radiosurgery|\bsrs\b|chemoradi\w*|radiochemo\w*"
    ),
    "surgery": r"(?:major )?surger(?:y|ies)|surgical|resection|operation",
    "steroids_immunosuppressants": (
        r"(?:systemic\s+)?(?:cortico)?steroids?|glucocorticoids?|prednisone|dexamethasone|"
        r"immunosuppress\w*"
    ),
    "egfr_mutation": (
        r"egfr(?:[-\s](?:gene|sensitizing|sensitising|activating|driver|sensitive))?[-\s]*"
        r"(?:\w+\s+){0,2}?(?:mutations?|mutant|mutated|positive|\+|wild[-\s]?type|negative|"
        r"alterations?|exon)|(?:mutations?|mutant|mutated|wild[-\s]?type) (?:of |in )?(?:the )?"
        r"egfr|ex(?:on)?\s?19\s?del\w*|exon 19 deletion|l858r|t790m|exon 20 insertion|"
        r"egfr[-\s]mutated|\begfr\b(?![-\s]*(?:tkis?|inhibitors?|tyrosine|targe?t\w*|antibod|"
        r"(?:over)?express|amplif|protein))"
    ),
    "alk_rearrangement": (
        r"alk(?:[-\s]gene)?[-\s]*(?:\w+\s+){0,2}?(?:rearrange\w*|fusions?|positive|\+|"
        r"translocations?|mutations?|negative|wild[-\s]?type|alterations?)|"
        r"(?:rearrange\w*|fusions?|wild[-\s]?type) (?:of |in )?(?:the )?alk\b|\balk\b(?!-?tki)"
        r"(?![-\s](?:tkis?|inhibitors?|tyrosine))"
    ),
    "other_driver": (
        r"ros[-\s]?1|kras|braf|\bmet\b (?:exon|amplification|mutation)|\bret\b|her[-\s]?2 "
        r"(?:mutation|amplification|exon)|ntrk|driver (?:gene|mutation|oncogene)s?"
    ),
    "pdl1_expression": (
        r"pd[-\s]?l1[-\s](?:expression|tps|tumou?r proportion|positive|status|≥|>=)"
    ),
    "brain_metastases": (
        r"(?:brain|cns|central nervous system|cerebral|intracranial)\s+(?:and/or\s+\w+\s+)?"
        r"(?:metasta\w*|lesions?|tumou?rs?|involvement|mets?)|"
        r"(?<!\bor\s)(?<!,\s)(?:brain|cns|central nervous system|intracranial)\s+disease|"
        r"metasta\w* (?:to|in|of) the (?:brain|cns|central nervous system)|"
        r"(?:spots?|lesions?|tumou?rs?|mets|deposits?|growths?|spread\w*)\s+(?:in|on|to|into)\s+"
        r"(?:my|his|her|their|the)\s+brain|"
        r"leptomeningeal|meningeal (?:metasta\w*|carcinomatosis)|spinal cord compression|"
        r"brain (?:or|and|/) (?:spinal|leptomeningeal|meningeal)"
    ),
    "hiv": r"(?:\bhiv\b|human immunodeficiency virus)(?!\s+(?:vaccin|immuni[sz]))|\baids\b",
    "hepatitis_b": (
        r"hepatitis\s*(?:type\s+)?b(?:\s*(?:and/or|or|/|and|,)\s*(?:type\s+)?c)?\b"
        r"(?!\s+(?:surface\s+antibod|vaccin|immun))|"
        rf"\bhbv\b|hbsag|hbv[-\s]?dna|\bhep\.?\s*b\b|{_VIRAL_HEPATITIS}"
    ),
    "hepatitis_c": (
        r"hepatitis\s*(?:type\s+)?c\b|\bhcv\b|hcv[-\s]?rna|"
        r"hepatitis\s*(?:type\s+)?b\s*(?:and/or|or|/|and|,)\s*(?:type\s+)?c\b|"
        rf"\bhep\.?\s*c\b|{_VIRAL_HEPATITIS}"
    ),
    "tuberculosis": r"tubercul\w*|\btb\b",
    "infection": r"(?:active|uncontrolled|serious|severe|systemic)\s+(?:\w+\s+)?infections?",
    "pregnancy": r"pregnan\w*",
    "breastfeeding": r"bre?a?st[-\s]?feed\w*|lactat\w*|nursing",
    "autoimmune_disease": r"auto[-\s]?immune|autoimmunity",
    "interstitial_lung_disease": (
        r"interstitial (?:lung disease|pneumonia|pulmonary disease|fibrosis)|\bild\b|"
        r"pulmonary fibrosis|idiopathic pulmonary|organi[sz]ing pneumonia"
    ),
    "pneumonitis": r"pneumonitis|non[-\s]?infectious\s+pneumonia|radiation[-\s]+pneumonia",
    "other_malignancy": (
        r"(?:history\s+of|previous\s+or\s+current|current\s+or\s+previous)\s+(?:\w+\s+)?"
        r"(?:malignan\w*|cancers?)|malignant\s+disease|"
        r"(?:other|another|second|additional|prior|previous|concurrent|secondary|active)\s+"
        r"(?:primary\s+)?(?:malignan\w*|cancers?|tumou?rs?)|malignan\w* other than"
    ),
}
# Concepts that are treatments: named as something a patient received (or will not receive),
# never as the study's own drug ("5 months after the final dose of atezolizumab").
TREATMENTS = frozenset(
    {"pd1_pdl1", "checkpoint_inhibitor", "egfr_tki", "alk_tki", "chemotherapy",
     "systemic_therapy", "radiotherapy", "surgery"}
)  # fmt: skip
_RECEIVED = re.compile(
    r"(?i)\b(?:prior|previous(?:ly)?|received|receiv\w*|treated|treatments?\s+with|therapy\s+with|"
    r"exposure|exposed|progress\w*|after|following|na[iï]ve|under|courses?|cycles?|history|"
    r"within|since|lines?|regimens?|administ\w*|pre-?treated|refractory|fail\w*|resistan\w*|"
    r"intoleran\w*|completed|use\s+of|undergone|subjected|weeks?|days?|months?|before|ongoing|concurrent\w*|"
    r"current\w*|planned|participat\w*|adjuvant|neoadjuvant|consolidation|maintenance|"
    r"first[-\s]line|second[-\s]line|relapse\w*|recurr\w*|any)\b"
)
PARENT: dict[str, str] = {
    "pd1_pdl1": "checkpoint_inhibitor",
    "checkpoint_inhibitor": "systemic_therapy",
    "egfr_tki": "systemic_therapy",
    "alk_tki": "systemic_therapy",
    "chemotherapy": "systemic_therapy",
}
_PATTERNS = {
    key: re.compile(rf"(?<![\w-])(?:{form})", re.IGNORECASE) for key, form in CONCEPTS.items()
}


@dataclass(frozen=True, slots=True)
class Mention:
    """A concept a criterion names, what it does with a patient who has it, and the words
    that narrow it (the condition under which such a patient may still enter)."""

    concept: str
    direction: Direction
    span: tuple[int, int]
    qualifiers: tuple[str, ...] = ()
    condition: str = ""  # the narrowing words, quoted from the criterion

    def keys(self) -> tuple[str, ...]:
        """What the mention is found under (rag.store.Index.concept_criteria): its concept and
        each qualifier it carries (qualifier_key)."""
        return (self.concept, *map(qualifier_key, self.qualifiers))


def qualifier_key(qualifier: str) -> str:
    """A qualifier as a key beside the concepts ("+any_treatment")."""
    return f"+{qualifier}"


@dataclass(frozen=True, slots=True)
class Limit:
    """A numeric range an eligible patient must be in: what op value unit."""

    what: str
    op: str
    value: float
    unit: str
    span: tuple[int, int]


@dataclass(frozen=True, slots=True)
class Typed:
    """One criterion's typed facts."""

    criterion_id: str
    section: str
    mentions: tuple[Mention, ...] = ()
    limits: tuple[Limit, ...] = ()
    exceptions: tuple[tuple[int, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "criterion_id": self.criterion_id,
            "section": self.section,
            "mentions": [
                {
                    "concept": m.concept,
                    "direction": m.direction,
                    "span": list(m.span),
                    "qualifiers": list(m.qualifiers),
                    "condition": m.condition,
                }
                for m in self.mentions
            ],
            "limits": [
                {"what": x.what, "op": x.op, "value": x.value, "unit": x.unit, "span": list(x.span)}
                for x in self.limits
            ],
            "exceptions": [list(s) for s in self.exceptions],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Typed:
        return cls(
            data["criterion_id"],
            data["section"],
            tuple(
                Mention(
                    m["concept"],
                    m["direction"],
                    (m["span"][0], m["span"][1]),
                    tuple(m["qualifiers"]),
                    m["condition"],
                )
                for m in data["mentions"]
            ),
            tuple(
                Limit(
                    x["what"], x["op"], float(x["value"]), x["unit"], (x["span"][0], x["span"][1])
                )
                for x in data["limits"]
            ),
            tuple((s[0], s[1]) for s in data["exceptions"]),
        )


def type_trial(trial: Trial) -> list[Typed]:
    """Typed facts for each of the trial's criteria that states any. An interventional
    trial's own treatments (the concepts its interventions and title name) are read as its
    treatment where an inclusion names them without calling them prior therapy."""
    own: frozenset[str] = frozenset()
    observational = (trial.study_type or "").upper() == "OBSERVATIONAL"
    if not observational:
        names = [*(trial.value("interventions")[0] or ()), trial.title or ""]
        named = {key for name in names for key, _ in concepts_in(name)} & TREATMENTS
        # a PD-1 drug of its own is the "immune checkpoint inhibitor" its criteria name
        named |= {PARENT[key] for key in named if PARENT.get(key) not in (None, "systemic_therapy")}
        own = frozenset(named)
    typed = (type_criterion(c.id, c.section, c.text, own, observational) for c in trial.criteria)
    return [t for t in typed if t.mentions or t.limits]


def type_criterion(
    criterion_id: str,
    section: str,
    text: str,
    own: frozenset[str] = frozenset(),
    observational: bool = False,
) -> Typed:
    """One criterion's typed facts; `own` are the trial's own treatments, and an observational
    trial has none (see type_trial)."""
    exceptions = _exceptions(text)
    mentions = list(_mentions(section, text, exceptions, own, observational))
    mentions = [
        _except(m, text, owned) if (owned := _carving(m, text, exceptions)) else m for m in mentions
    ]
    return Typed(
        criterion_id, section, tuple(mentions), tuple(limits(section, text)), tuple(exceptions)
    )


def _carving(
    mention: Mention, text: str, exceptions: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """The carve-outs that follow an excluded naming in its own clause ("autoimmune disease,
    except vitiligo"; not "HIV; autoimmune disease except vitiligo" for HIV), or anywhere
    after it when they open with "however" ("autoimmune disease (such as ILD); however, the
    following are allowed: vitiligo": said of the disease, not of an example in its aside)."""
    if mention.direction != "excluded":
        return []
    _, end = _clause_bounds(text, mention.span[0])
    example = any(a.start() < mention.span[0] < a.end() for a in _ASIDE.finditer(text))
    return [
        (a, b)
        for a, b in exceptions
        if mention.span[1] <= a
        and (a < end or (text[a : a + 7].lower() == "however" and not example))
    ]


def _except(mention: Mention, text: str, exceptions: list[tuple[int, int]]) -> Mention:
    """An exclusion followed by a carve-out in its own criterion is narrowed by it
    ("anti-PD-L1 (except during durvalumab consolidation)", "autoimmune disease, except
    vitiligo")."""
    words = "; ".join(" ".join(text[a:b].split()) for a, b in exceptions)
    condition = "; ".join(filter(None, [mention.condition, words]))
    return Mention(
        mention.concept, "excluded", mention.span, (*mention.qualifiers, "except"), condition
    )


def concepts_in(text: str) -> list[tuple[str, tuple[int, int]]]:
    """The curated concepts a phrase names (a question's topic, a criterion), with spans;
    a shorter match inside a longer one of another concept is dropped ("EGFR-TKI" is a drug,
    not a mutation)."""
    found = [(key, m.span()) for key, pattern in _PATTERNS.items() for m in pattern.finditer(text)]
    return [
        (key, span)
        for key, span in found
        if not any(
            other != key
            and o[0] <= span[0]
            and span[1] <= o[1]
            and (o[1] - o[0]) > (span[1] - span[0])
            for other, o in found
        )
    ]


# --- direction, qualifiers, exceptions ------------------------------------------------------

# Words that open a carve-out: what follows is let back in.
_EXCEPT = re.compile(
    r"\b(?:except(?:\s+for)?|excluding|other\s+than|with\s+the\s+exception\s+of|unless|"
    r"but\s+(?:not|allow\w*)|apart\s+from|save\s+for|exceptions?\s*(?:include|are|:))\b|"
    r"\bhowever,?\s+(?=(?:[\w-]+\s+){0,8}?(?:are|is|will\s+be|can\s+be|may\s+be)\s+(?:allowed|"
    r"permitted|eligible|included|enrolled)\b)",
    re.IGNORECASE,
)
_ALLOW = re.compile(
    r"\b(?:(?:is|are|will\s+be|be)\s+)?(?:allowed|permitted|permissible|acceptable|eligible|"
    r"accepted)\b(?!\s+(?:for|to)\b)|"
    r"\b(?:may|can|could)\s+(?:be\s+)?(?:enrolled|included|enroll|enter|participate|considered|"
    r"have\s+received|have\s+had|be\s+eligible)|\bare\s+not\s+excluded\b",
    re.IGNORECASE,
)
_NOT_ALLOWED = re.compile(
    r"\b(?:not|n't|never)\s+(?:be\s+)?(?:allowed|permitted|acceptable|eligible|accepted)\b",
    re.IGNORECASE,
)
_NEG_BEFORE = re.compile(
    r"(?:\b(?!(?:no|not)\s+(?:more|less|greater|fewer|exceed\w*|higher|lower)\b)"
    r"(?:no|not|without|never|nor|free\s+of|absence\s+of|negative(?:\s+(?:for|of))?|"
    r"naive\s+to|naïve\s+to|not\s+(?:have|had|received|be)|(?:have|has)\s+not|"
    r"did\s+not|do\s+not|does\s+not|must\s+not|should\s+not|cannot|unwilling|avoid\w*)\b"
    r"(?:\W+\w+){0,6}?\W*)$",
    re.IGNORECASE,
)
_TEST_FOR = re.compile(r"(?i)\s*tests?\b")
_CIRCUMSTANCE = re.compile(r"(?i)\b(?:after|following|despite|recover\w*|swallow\w*)\b|[,;]")
_NEG_AFTER = re.compile(
    r"^(?:[-\s]*(?:\w+\s+){0,5}?)(?:negative|wild[-\s]?type|naive|naïve|free\b|"
    r"(?:is|are|was|were)\s+not\s+(?:present|detected|found))|^\s*\(?-\)?(?!\w)",
    re.IGNORECASE,
)
_NAIVE_BEFORE = re.compile(
    r"\b(?:treatment|therapy|drug)[-\s]na[iï]ve\b(?:\W+\w+){0,8}?\W*$|\bna[iï]ve\s+(?:to|for)\b"
    r"(?:\W+\w+){0,4}?\W*$",
    re.IGNORECASE,
)
# Qualifiers that narrow a concept: excluded only when they hold.
QUALIFIERS: dict[str, str] = {
    "active": r"\bactive(?:ly)?\b|\bongoing\b|\b(?:con)?current(?:ly)?\b(?!\s+stage)",
    "untreated": r"\buntreated\b|\bnot\s+(?:been\s+)?(?:adequately\s+)?treated\b|\bunresected\b",
    # "untreated active hepatitis": both must hold, so a treated active one is let in
    "untreated_active": r"\buntreated\s+active\b|\bactive\s+(?:and\s+)?untreated\b",
    "symptomatic": (
        r"\bsymptomatic\b|\bprogressi(?:ve|ng)\b|"
        r"(?<!n't\s)(?<!not\s)(?<!no\s)\b(?:with|caus\w*|produc\w*|giving|having|showing)\s+"
        r"(?:(?!no\b|any\b)\w+\s+)?(?:symptoms|seizures?|headaches?|neurologic\w*\s+\w+)\b"
    ),
    "uncontrolled": (
        r"\buncontrolled\b|\bunstable\b|\bnot\s+(?:well\s+)?controlled\b|"
        r"\b(?:keep\w*\s+|still\s+)?(?:enlarg|grow)ing\b|\bgetting\s+(?:bigger|larger)\b"
    ),
    "requiring_treatment": (
        r"\brequir\w*\s+(?:\w+\s+){0,3}?(?:treatment|therapy|steroids?|corticosteroids?|"
        r"glucocorticoids?|immunosuppress\w*|antiviral|intervention|hospitali[sz]ation)|"
        r"\b(?:needs?|needed|needing)\s+(?:\w+\s+){0,2}?(?:treatment|therapy|steroids?)|"
        r"\b(?:treated|managed)\s+with\s+(?:systemic\s+)?(?:steroids?|corticosteroids?|"
        r"glucocorticoids?|prednis\w+|methylprednis\w+|dexamethasone)|\bsteroid[-\s]requiring\b|"
        r"\bon\s+(?:high[-\s]dose\s+)?(?:steroids|prednis\w+)\b"
    ),
    "within": (
        r"\b(?:within|in\s+the\s+(?:past|last|previous)|during\s+the\s+(?:past|last))\s+"
        r"(?:the\s+)?(?:\w+\s+)?(?:\d+(?:\.\d+)?|one|two|three|four|five|six|eight|twelve)\s*"
        r"(?:-|to)?\s*(?:days?|weeks?|wks?|months?|years?|half[-\s]lives)|"
        r"\b(?:less\s+than|fewer\s+than|<)\s*(?:\d+|one|two|three|four|six)\s*(?:days?|weeks?|months?)|"
        r"\bfor\s+(?:at\s+least|the\s+(?:past|last))\s+(?:\d+|one|two|three|four|six)\s*"
        r"(?:days?|weeks?|months?)|"
        r"\b(?:\d+|one|two|three|four|six)\s*(?:days?|weeks?|months?|years?)\s+"
        r"(?:before|prior\s+to|preceding|of)\s+(?:the\s+)?(?:first|start|initiation|"
        r"enrol|random|registration|study|screening|c1d1|cycle|day\s+1|signing)|"
        r"(?:at\s+least|≥|>=|more\s+than|minimum\s+of)\s*\d+\s*(?:days?|weeks?|months?)\s+"
        r"(?:have\s+)?(?:elapsed|passed|since|after|from|before|prior|between)"
    ),
    "setting": (
        r"\b(?:for|in)\s+(?:the\s+)?(?:treatment\s+of\s+)?(?:locally\s+advanced|advanced|"
        r"metastatic|recurrent|stage\s+i{1,3}v?|stage\s+iv|unresectable)(?:\s*(?:/|or|and)\s*"
        r"(?:metastatic|advanced|recurrent))?\b|\b(?:as\s+(?:part\s+of\s+)?)?(?:neo)?adjuvant\b|"
        r"\bconsolidation\b|\bmaintenance\b|\bfor\s+(?:the\s+treatment\s+of\s+)?(?:this|the\s+current|"
        r"the\s+present|the\s+study|the\s+patient'?s\s+current)\s+"
        r"(?:\w+\s+){0,2}?(?:cancer|disease|tumou?r|malignancy|nsclc|indication)\b"
    ),
    # a treatment named for a lesion, not the patient: "sites treated by radiotherapy are not
    # measurable", "a lesion not subjected to irradiation": had elsewhere, it is let in
    "lesion": (
        r"\b(?:target\s+)?lesions?\b|\bsites?\s+(?:previously\s+)?(?:treated|irradiated)\b|"
        r"\bmeasurable\b|\birradiat(?:ed|ion)\s+(?:field|area|site)s?\b"
    ),
    "defined": (
        r"(?:dna|rna|viral\s+load|titer|titre|copies|copy\s+number)\s*(?:\w+\s+){0,4}?"
        r"(?:(?:[≥≤<>]|\\[<>]|>=|<=|exceed\w*|above|greater\s+than)\s*[\d.,]+\s*(?:[×x]\s*10\s*\^?\s*\d+\s*)?"
        r"(?:iu/ml|copies/ml|iu|copies)?|(?:the\s+)?upper\s+limit\s+of\s+normal|positive|detectable|"
        r"undetectable)"
    ),
    "discretion": r"\bdiscretion\b|\binvestigator(?:'s)?\s+(?:judg\w*|opinion|decision)",
    "site": (
        r"\boutside\s+(?:of\s+)?(?:the\s+)?(?:chest|thora\w*)(?:\s+region)?|\boverlap\w*|"
        r"\b(?:same|previously\s+irradiated)\s+(?:region|field|area|site)s?\b|"
        r"\b(?:thoracic|chest|lung|pulmonary|mediastin\w*|ipsilateral|whole[-\s]brain|brain|"
        r"bones?|spine|spinal|pelvi\w*|extremit\w*|"
        r"wide[-\s]field|extended[-\s]field|limited[-\s]field|palliative|> ?\d+% of (?:the )?"
        r"bone marrow|bone marrow)\b"
    ),
    # a treatment the patient may get, not one had: "candidates for surgery", "treatable with
    # radiotherapy", "lung function not compatible with radiation", "a condition that
    # contraindicates the use of an investigational drug"
    "planned": (
        r"\b(?:suitable|unsuitable|candidates?|amenable|fit|unfit|compatible|indicated|contraindicat\w*|"
        r"eligible|ineligible|treatable|planned|scheduled|plan(?:s|ning)?\s+to|will\s+(?:receive|"
        r"undergo|be\s+treated))\b(?:\s+(?:for|with|by))?"
    ),
    "toxicity": (
        r"(?:toxicit\w*|adverse\s+(?:events?|reactions?|effects?)|\baes?\b|\biraes?\b|"
        r"side\s+effects?|intoleran\w*|untolerable|hypersensitiv\w*|allerg\w*)"
    ),
    "cohort": r"\b(?:cohorts?|arms?|parts?|groups?)\s+(?:[A-Z]\b|\d)",
    "lines": (
        r"\b(?:more\s+than|>|≥|>=|at\s+least|\d+\s+or\s+more|up\s+to|no\s+more\s+than)\s*"
        r"(?:\d+|one|two|three)\s+(?:prior\s+|previous\s+)?(?:\w+\s+){0,3}?(?:lines?|regimens?)\b|"
        r"\b(?:lines?|regimens?)\s+(?:of\s+)?(?:[\w-]+\s+){0,4}?(?:≥|>=|>|≤|<=|<)\s*\d"
    ),
    "history": r"\bhistory\b|\bprior\b|\bprevious(?:ly)?\b|\bpast\b",
    "treated": r"(?<!un)\btreated\b|\bstable\b|\basymptomatic\b|\bcontrolled\b|\bresolved\b",
}
_QUALIFIER_PATTERNS = {k: re.compile(v, re.IGNORECASE) for k, v in QUALIFIERS.items()}
# Qualifiers that narrow an exclusion: a patient without them is let in.
NARROWING = frozenset(
    {"active", "untreated", "untreated_active", "symptomatic", "uncontrolled",
     "requiring_treatment", "within", "setting", "defined", "discretion", "site", "toxicity",
     "cohort", "lines", "except", "lesion"}
)  # fmt: skip
_CLAUSE = re.compile(
    r";|(?<!\bi\.e)(?<!\be\.g)(?<!\betc)(?<!\bvs)(?<!\bno)\.\s+(?=[A-Z\d(])|"
    r"\n\s*(?:[-•*]|\d+[.)])\s+|\n\n"
)


def _clause_bounds(text: str, at: int) -> tuple[int, int]:
    """The clause holding `at`: from the separator before it to the one after."""
    starts, ends = _separators(text)
    before = bisect.bisect_right(ends, at)
    after = bisect.bisect_left(starts, at)
    end = starts[after] if after < len(starts) else len(text)
    return (ends[before - 1] if before else 0), end


@lru_cache(maxsize=64)
def _separators(text: str) -> tuple[list[int], list[int]]:
    """Where the clause separators of a text start and end (found once per text)."""
    spans = [m.span() for m in _CLAUSE.finditer(text)]
    return [a for a, _ in spans], [b for _, b in spans]


# A carve-out ends where its criterion names whom it excludes next.
_NEW_SUBJECT = re.compile(
    r"(?i),?\s+(?:and|or)\s+(?:patients?|subjects?|participants?|those|anyone)\s+(?:with|who)\b"
)


def _exceptions(text: str) -> list[tuple[int, int]]:
    """Spans of what an exception clause lets back in: from its opening word to the clause's
    end."""
    out = []
    for cue in _EXCEPT.finditer(text):
        if re.match(r"but\s+not", cue.group(), re.I):
            continue
        start, end = _clause_bounds(text, cue.end())
        before = text[start : cue.start()]
        closing = re.search(r"\)", text[cue.end() : end])
        if closing and before.count("(") > before.count(")"):  # it ends with its aside
            end = cue.end() + closing.start()
        if subject := _NEW_SUBJECT.search(text, cue.end(), end):
            end = subject.start()  # "other than X, and patients with Y": Y is excluded again
        out.append((cue.start(), end))
    out.extend(
        (m.start(), m.end()) for m in re.finditer(r"(?i)\bexceptions?\b[^:]{0,40}:[^;]*", text)
    )
    return out


# "not" that negates nothing named: "including but not limited to", "could not rule out ILD"
# (suspected, so excluded like the named one)
_NOT_NEGATING = re.compile(
    r"(?i)\b(?:but\s+)?not\s+limited\s+to\b|"
    r"\b(?:cannot|can't|could\s+not|can\s+not|not)\s+(?:be\s+)?rul\w*\s+out\b"
)
_WITH_OR_WITHOUT = re.compile(r"(?i)\bwith\s+or\s+without\s+(?:\w+\s+){0,3}?$")
_NEG_INSIDE = re.compile(r"wild[-\s]?type|negative|\bwithout\b|untreated|na[iï]ve", re.IGNORECASE)
_JOIN = re.compile(r"[\s,/&]*(?:(?:and|or|and/or|nor)\b)?[\s,/&]*(?:genes?\s*)?", re.IGNORECASE)
_TREATING = re.compile(r"(?i)\b(?:requir\w*|needs?|needing)\s+(?:\w+\s+){0,2}?$")


def _negations(text: str, found: list[tuple[str, tuple[int, int]]]) -> list[bool]:
    """Whether each mention is named as absent ("no prior", "wild-type", "negative"); a list
    of names shares its negation ("EGFR, ALK gene wild type", "wild type EGFR and ALK")."""
    negated = []
    text = _NOT_NEGATING.sub(lambda m: "x" * len(m.group()), text)
    for concept, span in found:
        start, end = _near(text, span)
        # an aside's words are its own: "(except ... without hormone therapy) and X"
        before = _ASIDE.sub(" ", text[start : span[0]])[-80:]
        after = text[span[1] : end][:40]
        if _WITH_OR_WITHOUT.search(before):
            negated.append(False)
            continue
        cue = _NEG_BEFORE.search(before)
        if cue and _CIRCUMSTANCE.search(cue.group()):
            cue = None  # "not progressed after receiving X": X is had, the progression is not
        negated.append(
            bool(
                cue
                or _NEG_AFTER.search(after)
                or (concept == "pregnancy" and _TEST_FOR.match(after))  # to come back negative
                or _NAIVE_BEFORE.search(before)
                or _NEG_INSIDE.search(text[span[0] : span[1]])
            )
        )
    for _ in range(2):  # spread along a list both ways
        for i in range(len(found) - 1):
            gap = text[found[i][1][1] : found[i + 1][1][0]]
            if _JOIN.fullmatch(gap) and negated[i] != negated[i + 1]:
                negated[i] = negated[i + 1] = True
    return negated


_DISEASE = re.compile(
    r"(?i)auto[-\s]?immune|hepatitis|\bhbv\b|\bhcv\b|\bhiv\b|infection|pneumonitis|interstitial|"
    r"tubercul|thyroid|diabetes|psoriasis|lupus|colitis|arthritis|sarcoidosis"
)


_REQUIRED = re.compile(
    r"(?i)\b(?:must|should|required?|have\s+received|had\s+received|received|progress\w*|after|"
    r"(?:has|have)\s+had|at\s+least\s+(?:one|1|two|2)\s+(?:prior|previous|line)|"
    r"following|pre-?treated|previously\s+treated|refractory|fail\w*|relapse\w*|under|"
    r"courses?|cycles?|lines?|resistan\w*|intoleran\w*|candidates?\s+for|planned|scheduled|"
    r"eligible\s+for|suitable\s+for|undergo\w*|receiv\w*|treated\s+with)\b"
)
_ELAPSED = re.compile(
    r"(?i)(?:at\s+least|≥|>=|more\s+than|minimum\s+of|over)\s*\d+\s*(?:days?|weeks?|months?)\s+"
    r"(?:have\s+)?(?:elapsed|passed|since|after|from|before|prior|between)"
)
_STUDY_DOSE = re.compile(
    r"(?i)\b(?:last|final|first)\s+(?:dose|administration|infusion)s?\s+of\s+(?:the\s+)?(?:study\s+)?$"
)
# Words that make a treatment named in an inclusion one the patient had before the trial.
_PRIOR = re.compile(
    r"(?i)\b(?:prior|previous(?:ly)?|refractory|resistan\w*|fail\w*|intoleran\w*|relapse\w*|"
    r"pre-?treated)\b|(?<!not\s)(?<!no\s)\bprogress\w*\s+(?:on|after|following|during|while)\b"
)
_ASIDE = re.compile(r"\([^()]*\)")
# "Patients who have received prior radiotherapy must ...", "if previously treated with ...":
# an inclusion that sets conditions for those who had it, not a requirement to have had it.
_IF_HAD = re.compile(
    r"(?i)\b(?:if|when|patients?|subjects?|participants?|those|anyone)\s+(?:who|that|with)?\s*"
    r"(?:have|has|had)?\s*(?:previously\s+|already\s+)?(?:received|undergone|had|been\s+treated"
    r"\s+with|prior|previous|(?:a\s+)?history\s+of)\b[^;]{0,60}$"
)
# What makes "patients who have received X" a condition on them: something they then must meet.
_THEN = re.compile(
    r"(?i)\b(?:must|should|need|needs|required|are\s+eligible|is\s+eligible|may|can|only\s+if|"
    r"provided|if|as\s+long\s+as|at\s+least|allowed|permitted|exceed\w*)\b"
)
# "For patients with chronic HBV infection, the HBV viral load must be undetectable": a
# condition on those who have it, wherever the clause names it again.
_THOSE = (
    r"(?:for|in)\s+(?:patients?|subjects?|participants?|those|people)\s+"
    r"(?:with|who\s+(?:have|had|are))\b"
)
_FOR_THOSE = re.compile(rf"(?i)\b{_THOSE}[^;,]{{0,60}}$")
_OPENS_FOR_THOSE = re.compile(rf"(?i)\W*{_THOSE}")
# An exclusion phrased as a prohibition: what it names is excluded, not required.
_PROHIBIT = re.compile(
    r"(?i)\b(?:(?:must|should|may|can|could)\s*not|cannot|can't)\s+(?:be|have|become)\b"
)
_COMPLETED = re.compile(
    r"(?i)^\W*(?:\w+\W+){0,8}?(?:must|should|is|are|was|were|has|have)\s+(?:be\s+|been\s+|have\s+"
    r"been\s+)?(?:completed|discontinued|stopped|finished|ended|recovered|terminated)"
)


def _mentions(
    section: str,
    text: str,
    exceptions: list[tuple[int, int]],
    own: frozenset[str],
    observational: bool,
) -> Iterator[Mention]:
    seen: set[str] = set()
    found = sorted(concepts_in(text), key=lambda x: x[1])
    outside = text
    for a, b in exceptions:
        outside = outside[:a] + " " * (b - a) + outside[b:]
    for (concept, span), negated in zip(found, _negations(text, found), strict=True):
        start, end = _near(text, span)
        clause_before = text[start : span[0]]
        clause = text[start:end]
        if _OTHER_STUDY.search(clause):
            continue  # taking part in another study is no treatment the question asks about
        if any(
            PARENT.get(c) == concept and o[1] <= span[0] and not text[o[1] : span[0]].strip(" -")
            for c, o in found
        ):
            continue  # "PD-1 immune checkpoint inhibitor": one drug, named by its kind too
        if concept not in TREATMENTS and any(
            c in TREATMENTS and o[1] <= span[0] and _FOR_WHAT.fullmatch(text, o[1], span[0])
            for c, o in found
        ):
            continue  # "no prior chemotherapy for HIV-associated lymphoma": what it treated
        if _RISK_OF.search(clause_before):
            continue  # "high-risk behavior for HIV infection": a risk of it is not having it
        if (
            concept == "systemic_therapy"
            and _NAIVE_TO.search(text, 0, span[0])
            and (re.match(r"(?i)treatment", text[span[0] : span[1]]))
        ):
            continue  # "osimertinib treatment-naive", "TKI treatment naive": naive to that drug
        if concept == "surgery" and _BEFORE_STUDY_SURGERY.search(clause_before):
            continue  # "prior to surgery", "before surgery": the study's, a point in time
        if re.match(r"\s*:", text[span[1] : span[1] + 3]):
            continue  # a heading ("Radiotherapy: Not specified"); what follows says the rest
        if concept == "systemic_therapy" and (
            _TREATING.search(clause_before) or _DISEASE.search(clause) or _LOCAL_DRUG.search(clause)
        ):
            continue  # "requiring systemic treatment" treats the condition; it is no therapy asked
        if concept == "steroids_immunosuppressants" and _TREATING.search(clause_before):
            continue  # "pneumonitis that required steroids": the condition's treatment
        if concept in TREATMENTS and (
            (section == "inclusion" and not observational and not _RECEIVED.search(clause))
            or _STUDY_DOSE.search(clause_before)
        ):
            continue  # the study's own drug, not a treatment the patient had (an observational
            # study gives none: the treatments its inclusions name are the patients')
        if section == "inclusion" and concept in own and not (negated or _PRIOR.search(clause)):
            continue  # the trial's own treatment ("not progressed after 4 courses of it")
        carved = any(a <= span[0] < b for a, b in exceptions)
        at = span[0] - start
        inside = any(a.start() <= at < a.end() for a in _ASIDE.finditer(clause))
        aside = clause if inside else _ASIDE.sub("", clause)  # an aside's "allowed" is its own
        allowed = bool(_ALLOW.search(aside)) and not _NOT_ALLOWED.search(aside)
        if section == "inclusion" and _WITH_OR_WITHOUT.search(clause_before):
            allowed = True  # (in an exclusion it details what is excluded)
        if_had = section == "inclusion" and (
            (_IF_HAD.search(clause_before) and _THEN.search(text[span[1] : end]))
            or _FOR_THOSE.search(clause_before)
            or _OPENS_FOR_THOSE.match(clause)
            or _COMPLETED.search(text[span[1] : end])
        )
        if if_had and not negated:
            allowed = True
        if (
            section == "inclusion"
            and concept in TREATMENTS
            and not negated
            and (not (_REQUIRED.search(clause) or observational) or _ELAPSED.search(clause))
        ):
            allowed = True  # named in an inclusion without being asked for: a condition on it
        if carved:
            direction: Direction = "allowed"
        elif _NOT_ALLOWED.search(aside):
            direction = "excluded"  # "prior anti-PD-1 therapy is not allowed", either section
        elif allowed:  # "patients without active infection are eligible": infection is not
            direction = "excluded" if negated else "allowed"
        elif section == "exclusion":  # "must not be pregnant" listed as an exclusion
            prohibited = negated and _PROHIBIT.search(clause_before[-60:])
            direction = "required" if negated and not prohibited else "excluded"
        else:
            direction = "excluded" if negated else "required"
        # a concept named again in the clause takes the words nearer to it ("active TB, or
        # a history of TB within one year": the first is not "within one year")
        apart = [
            o
            for c, o in found
            if c == concept and o != span and start <= o[0] < end and _apart(text, o, span)
        ]
        near_start = max([start, *(o[1] for o in apart if o[1] <= span[0])])
        near_end = min([end, *(o[0] for o in apart if o[0] >= span[1])])
        if carved:  # a carve-out's words are its own, and not the exclusion's
            a, b = next((a, b) for a, b in exceptions if a <= span[0] < b)
            near_start, near_end = max(near_start, a), min(near_end, b)
        read = text if carved else outside
        qualifiers, words = _qualifiers(read, near_start, near_end, span, concept)
        if (
            concept == "systemic_therapy"
            and _ANY_TREATMENT.match(text, *span)
            and not re.search(r"(?i)systemic\s+$", clause_before)
        ):
            qualifiers.append("any_treatment")  # local treatment too: radiotherapy, surgery
        if concept in ("pneumonitis", "interstitial_lung_disease") and _BY_RADIATION.search(
            text[max(0, span[0] - 20) : span[0] + 10]
        ):
            qualifiers.append("after_radiotherapy")  # a harm of radiotherapy: its condition
        if concept in TREATMENTS and _ADDED.search(clause_before[-30:]):
            qualifiers.append("combined")  # given with another: "or combination with chemotherapy"
        washout = section == "inclusion" and concept in TREATMENTS and _ELAPSED.search(clause)
        if washout and not negated and any(q.startswith("within") for q in qualifiers):
            direction = "excluded"  # "at least 4 weeks since prior radiotherapy": only if recent
        elif section == "inclusion" and concept in TREATMENTS and "toxicity" in qualifiers:
            direction = "allowed"  # "adverse effects from prior radiotherapy must have resolved"
        elif "lesion" in qualifiers and not washout:
            direction = "allowed"  # on the lesion's terms: "irradiated sites are not measurable"
        if direction == "required" and any(
            a.start() <= at < a.end() and _EXAMPLES.match(a.group())
            for a in _ASIDE.finditer(clause)
        ):
            continue  # "at least 1 prior therapy (e.g., radiotherapy, chemotherapy)": one of them
        key = f"{concept}:{direction}"
        if key in seen and not qualifiers:
            continue
        seen.add(key)
        yield Mention(concept, direction, span, tuple(qualifiers), "; ".join(words))


# An aside that gives examples: any one of them meets what it follows.
_EXAMPLES = re.compile(r"(?i)\(\s*(?:e\.?\s?g\b|such\s+as\b|for\s+example\b)")
# Between a treatment and the disease it was given for ("radiotherapy for brain metastases").
_FOR_WHAT = re.compile(
    r"(?i)\s+(?:\w+\s+)?for\s+(?:the\s+)?(?:treatment\s+of\s+)?(?:[\w-]+\s+){0,2}"
)
_RISK_OF = re.compile(r"(?i)\brisks?\b(?:\s+\w+){0,2}?\s+(?:for|of)\s+(?:\w+\s+)?$")
# Systemic-therapy words that name any cancer treatment, local ones too ("no cancer treatment
# for 2 weeks", "previously untreated"), not only drugs ("systemic therapy", "investigational
# agents").
_ANY_TREATMENT = re.compile(
    r"(?i)(?:anti[-\s]?(?:cancer|tumou?r)|anticancer|antitumou?r|cancer|oncologic)\s+"
    r"(?:therap|treatment)|previously"
)
# A lung harm radiotherapy leaves ("radiation pneumonitis", "radiation-induced ILD").
_BY_RADIATION = re.compile(r"(?i)radiation[-\s]+(?:induced\s+)?(?:pneumon|interstitial|ild)")
# Surgery as a point in time, the study's own ("less than 1 year before surgery").
_BEFORE_STUDY_SURGERY = re.compile(r"(?i)\b(?:prior\s+to|before)\s+(?:the\s+)?(?:planned\s+)?$")
# A name before "treatment-naive" says what the patient is naive to ("(TKI) treatment naive");
# "must be treatment-naive" names none.
_NAIVE_TO = re.compile(
    r"(?i)(?:\b(?!(?:be|are|is|was|were|been|must|and|or|patients?|subjects?|participants?|who|"
    r"with|of|for|to)\b)[a-z][\w-]*|\))\s*$"
)
# A treatment given with another, not an alternative to it ("or combination with chemotherapy").
_ADDED = re.compile(r"(?i)\b(?:combination\s+with|combined\s+with|plus|together\s+with)\s+$")
# Drugs given into a body cavity or a lesion are no systemic therapy ("antineoplastic agent
# during pleurodesis").
_LOCAL_DRUG = re.compile(
    r"(?i)\b(?:intra[-\s]?(?:cavit\w*|pleural|vesical|thecal|lesional|peritoneal|tumou?ral)|"
    r"topical|pleurodesis)\b"
)


_NEAR = 300  # characters either side of a naming that its words are read from


def _near(text: str, span: tuple[int, int]) -> tuple[int, int]:
    """The clause holding a naming, at most _NEAR characters either side of it."""
    start, end = _clause_bounds(text, span[0])
    return max(start, span[0] - _NEAR), min(end, span[1] + _NEAR)


def _apart(text: str, one: tuple[int, int], other: tuple[int, int]) -> bool:
    """Are two namings of a concept separate items of a list ("active TB, or a history of
    TB"), not one naming and its definition ("hepatitis B (HBsAg positive ...")?"""
    a, b = sorted((one, other))
    between = _ASIDE.sub("", text[a[1] : b[0]])
    return "(" not in between and bool(_NEW_ITEM.search(between))


# What starts a new item of a criterion, not one more noun of a list: "active TB, or with a
# history of TB" (while "chemotherapy ... or other investigational agents within 3 weeks"
# is one list under one time window).
_OTHER_STUDY = re.compile(
    r"(?i)\b(?:participat\w*|enrol(?:l?ed|ling|ment)?|taking\s+part)\s+in\s+"
    r"(?!(?:the|this)\s+(?:present\s+|current\s+)?(?:study|trial)\b)(?:\w+\s+){0,3}?"
    r"(?:study|studies|trials?|clinical)\b"
)
_NEW_ITEM = re.compile(
    r"(?i);|\bor\s+(?:with|who|whom|patients?|subjects?|participants?|those|anyone|a\s+history|"
    r"history|have|has|had|if|when)\b"
)


# Qualifiers said of the noun they stand by: one after a mention and past a list's comma or
# "or" belongs to a later item.
_ACTIVE_OR_PAST = re.compile(
    r"(?i)\b(?:active|current)\w*\b[^;]{0,60}?\bor\s+(?:a\s+)?(?:\w+\s+)?history\s+of\b"
)
_ADJECTIVES = frozenset({"active", "untreated", "untreated_active", "symptomatic", "uncontrolled"})
_ONLY_FOR = {
    "planned": TREATMENTS,
    "lesion": frozenset({"radiotherapy", "surgery"}),
    "toxicity": TREATMENTS,
    "site": frozenset({"radiotherapy", "surgery", ""}),
}


def _qualifiers(
    text: str, start: int, end: int, span: tuple[int, int], concept: str = ""
) -> tuple[list[str], list[str]]:
    """The qualifiers in the mention's clause, and the narrowing words quoted."""
    clause = text[start:end]
    names: list[str] = []
    words: list[str] = []
    for name, pattern in _QUALIFIER_PATTERNS.items():
        if name in _ONLY_FOR and concept not in _ONLY_FOR[name]:
            continue
        for m in pattern.finditer(clause):
            if name == "planned" and any(
                a.start() <= m.start() < a.end() and not a.start() <= span[0] - start < a.end()
                for a in _ASIDE.finditer(clause)
            ):
                continue  # "(stage IIIB not amenable to surgery)" is said of the stage
            if name == "toxicity" and start + m.start() > span[0]:
                continue  # toxicity "from" the treatment names it before
            if (
                start + m.start() < span[1]
                and start + m.end() > span[0]
                and name not in ("site", "lines")
            ):
                continue  # the concept's own words ("chemoradiotherapy")
            if name == "active" and any(
                start + alt.end() <= span[0] for alt in _ACTIVE_OR_PAST.finditer(clause)
            ):
                continue  # "active or a history of autoimmune disease (such as ...)": both are
            if name in _ADJECTIVES and start + m.start() >= span[1]:
                between = _ASIDE.sub(" ", text[span[1] : start + m.start()])
                if re.search(r"[,;]|\bor\b|\band\b", between):
                    continue  # "history of ILD, ..., or active pneumonitis": another item's word
            said = " ".join(m.group().split())
            value = name
            if name == "within":
                value = f"within: {said}"
            elif name in ("setting", "site"):
                value = f"{name}: {said.lower()}"
            if value not in names:
                names.append(value)
                if name in NARROWING:
                    words.append(said)
            break
    return names, words


@lru_cache(maxsize=256)
def question_qualifiers(topic: str) -> frozenset[str]:
    """The qualifiers an asked trait carries ("active hepatitis B": active; "radiotherapy to
    the chest": thoracic), named as the mentions' qualifiers are, and how long ago it was
    ("chemo 6 weeks ago": "ago: 6.0" in weeks)."""
    names, _ = _qualifiers(topic, 0, len(topic), (len(topic), len(topic)))
    out = {n.partition(": ")[0] for n in names}
    if re.search(r"(?i)\b(?:chest|thora\w*|lung|mediastin\w*)\b", topic):
        out.add("thoracic")
    ago = _AGO.search(_LAST.sub(r"1 \1 ago", topic))
    if ago:
        out.add(f"ago: {_weeks(ago.group('n'), ago.group('unit')):g}")
    return frozenset(out)


def viral_loads(text: str) -> list[tuple[float, str]]:
    """Viral loads a text states, with their unit ("HBV-DNA 3500 IU/mL" -> (3500, "iu");
    "≥ 10^4 copies/ml" and "104 copies/ml", a superscript lost in copying, -> (10000, "copies"))."""
    out = []
    for m in _LOAD.finditer(text):
        raw, power = m.group("n").replace(",", ""), m.group("p")
        value = float(raw) * 10 ** int(power) if power else float(raw)
        if not power and re.fullmatch(r"10[1-9]", raw) and m.group("u").lower().startswith("cop"):
            value = 10.0 ** int(raw[2])  # "104 copies" is 10^4 copies
        out.append((value, "iu" if m.group("u").lower().startswith("iu") else "copies"))
    return out


_LOAD = re.compile(
    r"(?i)(?<![\d.])(?P<n>\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)\s*(?:[×x*]\s*10\s*\^?\s*(?P<p>\d))?\s*"
    r"(?P<u>iu|cop(?:y|ies)(?:\s+numbers?)?)\s*/\s*m?l\b"
)


def elapsed(text: str) -> frozenset[str]:
    """How long ago the one treatment time a whole question gives was ("last chemo 6 weeks
    ago. Can he join?"), named as question_qualifiers names it; nothing when it gives none or
    several."""
    found = list(_AGO.finditer(_LAST.sub(r"1 \1 ago", text)))
    if len(found) != 1:
        return frozenset()
    return frozenset({f"ago: {_weeks(found[0].group('n'), found[0].group('unit')):g}"})


_LAST = re.compile(r"(?i)\b(?:last|this\s+past)\s+(week|month)\b")  # "last week": 1 week ago
_AGO = re.compile(
    r"(?i)\b(?P<n>\d+(?:\.\d+)?|a|an|one|two|three|four|five|six|eight|twelve)\s*"
    r"(?P<unit>days?|weeks?|wks?|months?|mos?|years?|yrs?)\s+(?:ago|back|before\s+(?:the\s+)?"
    r"(?:planned\s+|intended\s+)?(?:treatment|enrol\w*|start|screening|study|trial|entry))\b"
)
_WINDOW = re.compile(
    r"(?i)(?P<n>\d+(?:\.\d+)?|one|two|three|four|five|six|eight|twelve)\s*(?:-|to)?\s*"
    r"(?:\d+\s*)?(?P<unit>days?|weeks?|wks?|months?|years?)"
)
_UNIT_WEEKS = {"d": 1 / 7, "w": 1.0, "m": 52 / 12, "y": 52.0}


def _weeks(n: str, unit: str) -> float:
    count = {"a": 1, "an": 1} | _NUMBER_WORDS
    value = float(count.get(n.lower(), 0) or float(n))
    return value * _UNIT_WEEKS[unit.lower()[0]]


def window_weeks(qualifier: str) -> float | None:
    """The weeks a "within" qualifier spans ("within: within 3 months" -> 13), if it says."""
    found = _WINDOW.search(qualifier)
    return _weeks(found.group("n"), found.group("unit")) if found else None


# --- numeric limits -------------------------------------------------------------------------

_LAB_NAMES: dict[str, str] = {
    "platelets": r"platelets?(?:\s+count)?|\bplt\b",
    "neutrophils": r"(?:absolute\s+)?neutrophils?(?:\s+count)?|\banc\b",
    "hemoglobin": r"ha?emoglobin|\bhgb\b|\bhb\b",
    "wbc": r"white\s+blood\s+cells?(?:\s+count)?|\bwbc\b|leukocytes?(?:\s+count)?",
    "creatinine_clearance": (
        r"creatinine\s+clearance|\bcrcl\b|\bclcr\b|\bccr\b|"
        r"\begfr\b(?=\s*(?:\(|[≥≤<>=]|of\b|greater|less|at\s+least|above|below|>=|<=))|"
        r"glomerular\s+filtration\s+rate"
    ),
    "creatinine": r"(?:serum\s+)?creatinine(?!\s+clearance)|\bscr\b|\bcr\b",
    "bilirubin": r"(?:total\s+|serum\s+)?bilirubin|\btbil\b|\btbili\b",
    "ast_alt": (
        r"\bast\b|\balt\b|sgot|sgpt|transaminases?|aminotransferases?|"
        r"aspartate\s+(?:amino)?transferase|alanine\s+(?:amino)?transferase"
    ),
    "albumin": r"albumin",
    "inr": r"\binr\b|international\s+normali[sz]ed\s+ratio",
    "lvef": r"\blvef\b|(?:left\s+ventricular\s+)?ejection\s+fraction",
    "qtc": r"\bqtc[fb]?\b|\bqt\s+interval",
    "life_expectancy": (
        r"life\s+expectancy|expected\s+survival|survival\s+(?:time\s+)?(?:of|is|expected)"
    ),
    "karnofsky": r"karnofsky|\bkps\b",
}
_LABS = {k: re.compile(v, re.IGNORECASE) for k, v in _LAB_NAMES.items()}
_OPS: tuple[tuple[str, str], ...] = (
    (r"≥|>=|=>|\\>=|⩾|greater than or equal to|at least|no less than|not less than|"
     r"minimum(?: of)?", ">="),
    (r"≤|<=|=<|\\<=|⩽|less than or equal to|at most|no more than|not more than|not exceeding|"
     r"no greater than|not greater than|no higher than|not higher than|not above|"
     r"up to|maximum(?: of)?|not to exceed", "<="),
    (r">|\\>|greater than|more than|higher than|above|over|exceeds?|exceeding", ">"),
    (r"<|\\<|less than|lower than|below|under", "<"),
)  # fmt: skip


def _words_bounded(form: str) -> str:
    """An operator's alternatives, its worded ones as whole words over any spacing ("over"
    is not the end of "recovered")."""
    spaced = (alt.replace(" ", r"\s+") for alt in form.split("|"))
    return "|".join(rf"\b{alt}\b" if alt[0].isalpha() else alt for alt in spaced)


_OP = re.compile(
    "|".join(f"(?P<o{i}>{_words_bounded(form)})" for i, (form, _) in enumerate(_OPS)), re.I
)
_NUM = r"(\d{1,3}(?:,\d{3})+(?!\d)|\d+(?:[.,]\d+)?)"
_UNIT = re.compile(
    r"\s*((?:[×x*]|times)\s*(?:the\s+)?(?:uln|upper\s+limit(?:\s+of\s+normal)?|10\s*\^?\s*\d+\s*/\s*l"
    r"|10\s*\d\s*/\s*l)|(?:g|mg|µmol|μmol|umol|mmol|ml)\s*/\s*(?:dl|l|min(?:ute)?(?:/1\.73\s*m2)?)|"
    r"cells?\s*/\s*(?:µl|μl|ul|mm3|mm\^3)|/\s*(?:µl|μl|ul|mm3|mm\^3)|%|ms(?:ec)?\b|"
    r"months?|weeks?|days?|years?)",
    re.IGNORECASE,
)
_FLIP = {">=": "<", ">": "<=", "<=": ">", "<": ">="}


_NO_PATIENTS = re.compile(r"(?i)\W*no\s+(?:patients?|subjects?|participants?|one)\b")


def limits(section: str, text: str) -> list[Limit]:
    """Numeric limits the criterion sets, as the range an eligible patient must be in."""
    out: list[Limit] = []
    if _NO_PATIENTS.match(text):  # "No patients with a life expectancy < 72 hours"
        section = "exclusion"
    out.extend(_age_limits(section, text))
    out.extend(_ecog_limits(section, text))
    for what, pattern in _LABS.items():
        for name in pattern.finditer(text):
            limit = _bound_after(what, text, name.end(), section)
            if limit:
                out.append(limit)
                if what == "karnofsky":
                    top = _RANGE_AFTER.match(text[name.end() : name.end() + 60])
                    if top:
                        out.append(Limit(what, "<=", float(top.group(2)), "%", limit.span))
                break
    out.extend(_washouts(section, text))
    return out


_RANGE_AFTER = re.compile(
    r"\W{0,3}(?:(?:status|score|scale|of)\W+){0,2}(\d+)\s*%?\s*(?:-|–|to)\s*(\d+)\s*%?"
)
_OR_MORE = re.compile(
    r"\W{0,3}(?:(?:status|score|scale|of)\W+){0,2}(\d+)\s*%?\s*(?:or|and)\s+(greater|more|higher|"
    r"above|over|better|less|lower|below|fewer)\b",
    re.IGNORECASE,
)


def _bound_after(what: str, text: str, at: int, section: str) -> Limit | None:
    aside = re.match(r"\s*\([^()]{0,80}\)", text[at:])  # "Hemoglobin (no transfusion ...) >= 9"
    at += aside.end() if aside else 0
    window = text[at : at + 60]
    if what == "karnofsky":
        found = _RANGE_AFTER.match(window)
        if found:
            return Limit(what, ">=", float(found.group(1)), "%", (at, at + found.end()))
        more = _OR_MORE.match(window)
        if more:
            up = more.group(2).lower() in ("greater", "more", "higher", "above", "over", "better")
            op = ">=" if up else "<="
            op = _FLIP[op] if section == "exclusion" else op
            return Limit(what, op, float(more.group(1)), "%", (at, at + more.end()))
    op_m = _OP.search(window)
    if op_m is None or re.search(r"(?i)[;.]\s|not\s+specified", window[: op_m.start()]):
        return None  # the bound is another item's ("Life expectancy: Not specified ...")
    num = re.match(rf"\s*(?:of\s+)?{_NUM}", window[op_m.end() :])
    if num is None:
        return None
    op = next(op for i, (_, op) in enumerate(_OPS) if op_m.group(f"o{i}"))
    raw = num.group(1)
    value = float(
        raw.replace(",", "") if re.fullmatch(r"\d{1,3}(?:,\d{3})+", raw) else raw.replace(",", ".")
    )
    tail = at + op_m.end() + num.end()
    unit_m = _UNIT.match(text, tail)
    unit = _unit(unit_m.group(1)) if unit_m else ""
    end = unit_m.end() if unit_m else tail
    if section == "exclusion":
        op = _FLIP[op]
    return Limit(what, op, value, unit, (at + op_m.start(), end))


def _unit(raw: str) -> str:
    low = re.sub(r"\s+", "", raw.lower())
    if "uln" in low or "upper" in low:
        return "x ULN"
    if "10" in low and "/l" in low:
        return "10^9/L" if "9" in low else low
    return raw.strip()


def _age_limits(section: str, text: str) -> list[Limit]:
    from rag.derive import age_limits

    low, high, span = age_limits(text)
    if span is None:
        return []
    words = text[span[0] : span[1]]
    inclusive = re.search(
        r"(?i)\b(?:and|or)\s+(?:over|under|older|younger|above|below)\b|[≤≥]|<=|>=", words
    )
    if section == "exclusion":  # excluded "under 18" -> at least 18; "18 or younger" -> over 18
        if low is not None and high is None:
            return [Limit("age", "<" if inclusive else "<=", low, "years", span)]
        if high is not None and low is None:
            return [Limit("age", ">" if inclusive else ">=", high, "years", span)]
        return []
    out = []
    strict_low = not inclusive and bool(
        re.search(r"(?i)\bover\b|more than|older than|greater than|>(?!=)", words)
    )
    strict_high = not inclusive and bool(
        re.search(r"(?i)\bunder\b|less than|younger than|<(?!=)", words)
    )
    if low is not None:
        out.append(Limit("age", ">" if strict_low else ">=", low, "years", span))
    if high is not None:
        out.append(Limit("age", "<" if strict_high else "<=", high, "years", span))
    return out


_ECOG = re.compile(r"ecog|performance\s+status|\bps\b|zubrod|who\s+(?:performance|ps)", re.I)


def ecog_worded(text: str) -> set[int] | None:
    """The ECOG scores a bound in words after the performance status sets: "less than or
    equal to 2" (0-2), "greater than 3" (4, 5), "of 2 or more" (2-5); None when it sets none."""
    start = _ECOG.search(text)
    if start is None:
        return None
    more = _SCORE_OR_MORE.match(text, start.end())
    if more:
        n = int(more.group(1))
        up = more.group(2).lower() in ("greater", "more", "higher", "above", "over", "worse")
        return set(range(n, 6)) if up else set(range(0, n + 1))
    worded = _OP.search(text, start.end(), start.end() + 80)
    score = worded and _WORDED_SCORE.match(text, worded.end())
    if not (
        worded
        and score
        and worded.start() - start.end() <= 30
        and worded.group()[0].isalpha()
        and not re.search(r"\d", text[start.end() : worded.start()])  # another item's bound
    ):
        return None
    n = int(score.group(1))
    op = next(op for i, (_, op) in enumerate(_OPS) if worded.group(f"o{i}"))
    return {s for s in range(6) if {">=": s >= n, ">": s > n, "<=": s <= n, "<": s < n}[op]}


# a score, not a duration or a percentage ("Performance status: At least 3 months" is another
# item's bound where a record's labels slipped)
_WORDED_SCORE = re.compile(
    r"\s*(?:ecog\s*)?([0-5])\b(?![,.]\d)(?!\s*(?:%|percent|months?|weeks?|days?|years?)\b)",
    re.IGNORECASE,
)
# "ECOG performance status of 2 or more", "PS 1 or less": a score with its direction after it.
_SCORE_OR_MORE = re.compile(
    r"\W{0,3}(?:(?:performance|status|score|scale|grade|of|is)\W+){0,3}([0-5])\s*(?:or|and)\s+"
    r"(greater|more|higher|above|over|worse|less|lower|below|better)\b",
    re.IGNORECASE,
)


def _ecog_limits(section: str, text: str) -> list[Limit]:
    from rag.verdicts import ecog_values

    start = _ECOG.search(text)
    if start is None or re.match(r"(?i)karnofsky", text[start.start() :]):
        return []
    scores = ecog_values(text)
    if not scores:
        return []
    if section == "exclusion":
        scores = set(range(0, 6)) - scores
    if not scores:
        return []
    span = (start.start(), min(len(text), start.end() + 30))
    return [
        Limit("ecog", ">=", float(min(scores)), "", span),
        Limit("ecog", "<=", float(max(scores)), "", span),
    ]


_NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "eight": 8,
    "twelve": 12,
}
_WASHOUT = re.compile(
    r"\b(?:within|in\s+the\s+(?:past|last)|at\s+least|(?:≥|>=)|minimum\s+of)\s+(?:the\s+)?"
    r"(?:(?:past|last|previous)\s+)?"
    r"(?P<n>\d+|one|two|three|four|five|six|eight|twelve)\s*(?:-|to\s+\d+\s*)?\s*"
    r"(?P<unit>hours?|days?|weeks?|wks?|months?)\b(?P<after>[^;.]{0,60})",
    re.IGNORECASE,
)


_SINCE = re.compile(
    r"(?i)\s*(?:have\s+|has\s+|must\s+have\s+)?(?:since|after|from|before|prior|elapsed|passed|"
    r"between|following|must\s+(?:have\s+)?elapse)"
)


def _washouts(section: str, text: str) -> list[Limit]:
    """'within 4 weeks before the first dose' (exclusion) or 'at least 4 weeks since' as the
    time an eligible patient needs since a treatment."""
    out = []
    for m in _WASHOUT.finditer(text):
        before = text[max(0, m.start() - 120) : m.start()].lower()
        about_treatment = re.search(
            r"therap|treat|drug|agent|surgery|radiat|radiother|chemo|inhibitor|antibod|vaccin|"
            r"dose|received|immuno|tki",
            before + m.group("after").lower(),
        )
        if not about_treatment or re.search(r"(?i)expectancy|surviv", before[-40:]):
            continue
        start_word = m.group().split()[0].lower()
        if start_word not in ("within", "in") and not _SINCE.match(m.group("after")):
            continue  # "at least 3 months of EGFR-TKI therapy" is how long, not how long ago
        if start_word in ("within", "in") and section != "exclusion":
            if not re.search(r"(?i)\b(?:no|not|without)\b", before[-80:]):
                continue
        n = m.group("n").lower()
        value = float(_NUMBER_WORDS.get(n, 0) or int(n))
        unit = m.group("unit").lower().rstrip("s").replace("wk", "week") + "s"
        out.append(Limit("washout", ">=", value, unit, (m.start(), m.end("unit"))))
    return out
