"""What a trial is called: the words that name it, and how surely each does.

A question may name a trial by its acronym, the words of its title, its sponsor, treatments
or disease ("the anlotinib plus sindilimab trial", "the Fudan one"). understand.Vocabulary
scores such a name against every trial's naming words. The words are made here, below the
store, so that a build stores them (`Naming`, versioned by NAMING_VERSION as the typed facts
are by FACTS_VERSION) and a question reads them: making them for the 2,522 trials of
../shared/data took 1.9 s of every question that named a trial, parsing every record 0.5 s
more.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property

import numpy as np
import numpy.typing as npt

from rag import render
from rag.derive import about_sentences
from rag.lexical import fold, name_tokens
from rag.types import Trial

# Raise it whenever a trial's naming words or acronym could come out otherwise (naming_words,
# FRAME, name_tokens, about_sentences): a stored Naming of another version is not read.
NAMING_VERSION = 1

# Words that ask or frame rather than name what is asked about.
FRAME = frozenset(
    """which what who whom whose when where why how many much list any there allow allows
    allowed accept accepts accepted permit permits exclude excludes excluded include includes
    included require requires required need needs needed take takes let lets enrol enroll
    enrolls enrolled eligible eligibility criteria criterion trial trials study studies does do
    did is are was were would could can should will may might must i me my someone person
    patient patients participant participants year-old year old years-old it its this that the
    a an of for in on to and or about tell give say says state states stated record phase
    status sponsor sponsors enrollment start end ends completion age ages sex gender type
    outcome outcomes endpoint conditions interventions collaborators requirement requirements
    people plan plans planned principal investigator investigators currently one ones them
    they their these those please know want like find show me get has have had be been being
    still yet also just only other same than then into with from by at as if so not no yes
    be doing done go going join enter qualify limit limits threshold cutoff cut-off level
    levels value values range minimum maximum number count total compare comparison differ
    different difference between versus vs both each every all any anyone anybody somebody
    someone's we you your our us he she him her his hers mother father mom dad mum wife
    husband son daughter brother sister friend aunt uncle grandmother grandfather""".split()
)

# A word of the title, acronym, sponsor, people, treatments or conditions names a trial more
# surely than one of its summary or design.
PROSE_WEIGHT = 0.5
MIN_ACRONYM = 3  # a shorter acronym ("AB") is too often an ordinary word to name a trial
MIN_TITLE_WORDS = 3  # a shorter title ("Lung cancer") names a subject, not a trial

_FREE_TEXT = frozenset(
    {"interventions", "conditions", "investigators", "contacts", "acronym", "study_ids", "keywords"}
)


def naming_words(trial: Trial) -> dict[str, float]:
    """The words people name a trial by, with how surely each names it: those of its titles,
    sponsor, people, treatments, conditions, keywords, acronym and study ids ("CALGB-9781")
    surely, those of its summary and design less."""
    strong: list[str] = [trial.title or "", trial.official_title or "", trial.sponsor or ""]
    weak: list[str] = [trial.brief_summary or "", *about_sentences(trial)]
    for name in (
        "interventions",
        "conditions",
        "investigators",
        "contacts",
        "acronym",
        "study_ids",
        "keywords",
        "allocation",
        "intervention_model",
        "masking",
        "time_perspective",
    ):
        value, _ = trial.value(name)
        if value is None:
            continue
        values = list(value) if isinstance(value, tuple) else [value]
        if name in _FREE_TEXT:
            strong += values
        else:
            weak += [render.value(name, v) for v in values]
    weights = {t: PROSE_WEIGHT for text in weak for t in name_tokens(text)}
    weights |= {t: 1.0 for text in strong for t in name_tokens(text)}
    return {t: w for t, w in weights.items() if t not in FRAME}


def acronym(trial: Trial) -> str | None:
    """The trial's acronym, when it is long enough to name it."""
    found, _ = trial.value("acronym")
    return found if isinstance(found, str) and len(found) >= MIN_ACRONYM else None


def titles(trial: Trial) -> list[str]:
    """The trial's title and official title as a question holding one is matched (folded),
    when long enough to name it."""
    found = (fold(title or "") for title in (trial.title, trial.official_title))
    return list(dict.fromkeys(t for t in found if len(t.split()) >= MIN_TITLE_WORDS))


class Naming:
    """Every trial's naming words, held word by word: the trials `owners[starts[i]:
    starts[i + 1]]` (places in `trials`) have the word `words[i]`, with the `weights` beside
    them. Words come in the order the trials first use them, each word's trials in the
    trials' order. With them, the trials' acronyms and the trials each folded title names."""

    def __init__(
        self,
        trials: Sequence[str],
        words: list[str],
        starts: npt.NDArray[np.int64],
        owners: npt.NDArray[np.int32],
        weights: npt.NDArray[np.float32],
        acronyms: dict[str, str],
        titles: dict[str, list[str]],
    ) -> None:
        self.trials = trials
        self.words = words
        self.starts = starts
        self.owners = owners
        self.weights = weights
        self.acronyms = acronyms
        self.titles = titles

    @classmethod
    def of(cls, trials: Iterable[Trial]) -> Naming:
        """Made from the trials, in their order."""
        held = list(trials)
        by_word: dict[str, tuple[list[int], list[float]]] = {}
        for place, trial in enumerate(held):
            for word, weight in naming_words(trial).items():
                owners, weights = by_word.setdefault(word, ([], []))
                owners.append(place)
                weights.append(weight)
        named: dict[str, list[str]] = {}
        for trial in held:
            for title in titles(trial):
                named.setdefault(title, []).append(trial.id)
        sizes = [len(owners) for owners, _ in by_word.values()]
        return cls(
            [t.id for t in held],
            list(by_word),
            np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64),
            np.array([p for owners, _ in by_word.values() for p in owners], dtype=np.int32),
            np.array([w for _, weights in by_word.values() for w in weights], dtype=np.float32),
            {t.id: found for t in held if (found := acronym(t))},
            named,
        )

    @cached_property
    def _places(self) -> dict[str, int]:
        return {word: i for i, word in enumerate(self.words)}

    def __contains__(self, word: object) -> bool:
        return word in self._places

    def frequency(self, word: str) -> int:
        """How many trials the word names (0 for a word none has)."""
        i = self._places.get(word)
        return 0 if i is None else int(self.starts[i + 1] - self.starts[i])

    def fits(self, word: str) -> dict[str, float]:
        """The trials the word names, by id, each with how surely it names it."""
        i = self._places.get(word)
        if i is None:
            return {}
        cut = slice(int(self.starts[i]), int(self.starts[i + 1]))
        owners = self.owners[cut].tolist()
        weights = self.weights[cut].tolist()
        return {self.trials[p]: w for p, w in zip(owners, weights, strict=True)}

    def words_of(self, trial_id: str) -> frozenset[str]:
        """The trial's naming words (none for a trial the index does not hold)."""
        if trial_id not in self._trial_places:
            return frozenset()
        rows = np.flatnonzero(self.owners == self._trial_places[trial_id])
        found = np.searchsorted(self.starts, rows, side="right") - 1
        return frozenset(self.words[i] for i in found.tolist())

    @cached_property
    def _trial_places(self) -> dict[str, int]:
        return {trial_id: i for i, trial_id in enumerate(self.trials)}
