"""What a referring expression asks of the whole extent: how many objects, chosen how.

A tile-level model answers "which object here?"; over a raster the engine must also know whether the analyst wants
one object, N of them or all, and whether "largest", "in the top left" or "next to the lake" picks among them. This
module reads that from the sentence with a small English grammar (number words, superlatives, compass and image
directions, spatial prepositions, noun number) and hands the model the noun phrase it should find (``model_text``).

It never fails: a sentence it does not understand keeps its text for the model, and its cardinality falls back to
the head noun's grammatical number ("the ... buildings" -> all, "the ... building" -> one). Nothing here is tied to
a fixed vocabulary: any noun works.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

#: cardinality of a plan: one object, all objects, or an exact count (int)
ONE, ALL = "one", "all"

def _alternation(words) -> str:
    """A regex group matching any of ``words`` (longest first, so "a pair of" wins over "pair of")."""
    return "(?:" + "|".join(sorted(words, key=len, reverse=True)) + ")"


_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
            "ten": 10, "eleven": 11, "twelve": 12, "both": 2, "pair of": 2, "couple of": 2, "a pair of": 2,
            "a couple of": 2}
_NUMBER_RE = r"(?:\d+|" + _alternation(_NUMBERS) + ")"

# size superlatives (and their "most ..." forms) -> which end of the area ranking
_SIZE = {"largest": "max", "biggest": "max", "widest": "max", "longest": "max", "greatest": "max",
         "most large": "max", "most big": "max", "smallest": "min", "tiniest": "min", "shortest": "min",
         "narrowest": "min", "littlest": "min", "most small": "min", "most tiny": "min"}
_SIZE_RE = _alternation(_SIZE)
#: comparatives that pick one of a few ("the larger of the two lakes", "the smaller tank") -> as the superlatives;
#: one followed by "than" compares with something else and is not read
_COMPARATIVE = {"larger": "max", "bigger": "max", "wider": "max", "longer": "max", "greater": "max",
                "smaller": "min", "tinier": "min", "shorter": "min", "narrower": "min", "littler": "min"}
_COMPARATIVE_RE = _alternation(_COMPARATIVE)

# directions: image/compass word -> unit vector (x to the east/right, y to the north/top)
_DIRS = {"north": (0, 1), "south": (0, -1), "east": (1, 0), "west": (-1, 0),
         "top": (0, 1), "upper": (0, 1), "bottom": (0, -1), "lower": (0, -1),
         "left": (-1, 0), "right": (1, 0)}
_DIR_WORD = "(?:" + "|".join(_DIRS) + ")"
_COMPASS_ADJ = {"northern": "north", "southern": "south", "eastern": "east", "western": "west"}
_ABBREV = {"nw": "north west", "ne": "north east", "sw": "south west", "se": "south east"}

# spatial relations to another object (the anchor)
_RELATION_RE = r"(?:next to|close to|closest to|nearest to|nearest|closest|near to|near|beside|by|adjacent to|" \
               r"alongside|along|bordering|around|at the edge of|on the shore of|on the bank of|facing|" \
               r"(?:furthest|farthest|most distant) (?:away )?from)"
#: relations that rank by distance to the anchor, nearest or furthest first, and so pick one object
_NEAREST_RE, _FURTHEST_RE = r"(?:closest|nearest)\b", r"(?:furthest|farthest|most distant)\b"
# words that end the head noun phrase
_PREPOSITIONS = {"with", "of", "that", "which", "who", "in", "on", "at", "near", "next", "beside", "by", "along",
                 "alongside", "to", "from", "inside", "within", "between", "behind", "under", "over", "above",
                 "below", "across", "around", "close", "closest", "nearest", "adjacent", "bordering", "facing",
                 "whose", "where", "having", "located", "situated", "lying", "standing", "parked", "furthest",
                 "farthest", "except", "excluding", "but", "besides", "apart", "other", "not", "away", "among",
                 "amongst", "amid", "crossing", "spanning", "connecting", "overlooking", "surrounding", "containing",
                 "covering", "joining", "adjoining"}
_MASS_NOUNS = {"water", "vegetation", "forest", "grass", "grassland", "sand", "farmland", "cropland", "soil",
               "snow", "ice", "woodland", "land", "ground", "sea", "ocean", "parking", "pavement", "concrete",
               "asphalt", "bare", "scrub", "shrubland", "wetland", "marsh", "mud", "rock", "gravel", "dirt",
               "meadow", "pasture", "shadow", "shade", "cloud", "smoke", "urban", "built-up", "traffic", "debris"}
#: English colour and shade words: an attribute a model can read off the wrong object ("the orange car" drawn on an
#: orange roof), which ``class_phrase`` leaves out to ask what the object itself is
_COLOUR_WORDS = {"red", "orange", "yellow", "green", "blue", "purple", "violet", "pink", "brown", "black", "white",
                 "gray", "grey", "silver", "gold", "golden", "beige", "tan", "cyan", "turquoise", "teal", "navy",
                 "maroon", "cream", "ochre", "dark", "light", "pale", "bright", "reddish", "bluish", "greenish",
                 "whitish", "greyish", "grayish", "brownish", "yellowish"}
_IRREGULAR_PLURALS = {"people", "children", "men", "women", "geese", "mice", "feet", "teeth", "cattle", "sheep",
                      "fish", "aircraft", "deer", "series", "species", "police", "data"}
_IRREGULAR_SINGULAR_TO_PLURAL = {"person": "people", "child": "children", "man": "men", "woman": "women",
                                 "aircraft": "aircraft", "sheep": "sheep", "fish": "fish", "deer": "deer"}
_IRREGULAR_PLURAL_TO_SINGULAR = {p: s for s, p in _IRREGULAR_SINGULAR_TO_PLURAL.items()} | {
    "buses": "bus", "series": "series", "species": "species"}
_NOT_PLURAL_ENDINGS = ("ss", "us", "is", "ics", "ous")
#: the middle of the extent, region (0, 0): the central half of its width and of its height (half-width 0.25 of
#: the extent's side on each axis from the centre)
CENTRE_HALF_WIDTH = 0.25


@dataclass(frozen=True)
class ReferringPlan:
    """How to answer one expression over the whole extent."""

    query: str                      # the analyst's sentence, as typed (after whitespace clean-up)
    model_text: str                 # what the model is asked to find in each tile
    alt_text: str | None = None     # a second wording of it (singular noun) whose candidates join model_text's
    cardinality: object = ALL       # ONE, ALL, or an int
    size: str | None = None         # "max" | "min": keep the largest / smallest
    extreme: tuple | None = None    # unit (dx, dy): keep the object furthest that way ("northernmost")
    region: tuple | None = None     # (dx, dy) in {-1, 0, 1}: keep objects in that part of the extent; (0, 0): the
    #                                 middle of it ("the pond in the centre")
    relation: str | None = None     # the relation word ("next to", ...)
    anchor_text: str | None = None  # what the anchor is ("the lake"): found by the model, then used for distance
    understood: tuple = ()          # the parts of the sentence that were read (for the log and the attributes)
    side: tuple | None = None       # unit (dx, dy) of a directional relation: "north of the lake" keeps objects
    #                                 beyond the anchor that way
    ordinal: int = 1                # which of the ranked objects: 2 for "the second largest", "the 3rd from the left"
    area_m2: tuple | None = None    # (at least, at most) in m2, either None: "buildings larger than 200 m2"
    distance_m: tuple | None = None  # (at least, at most) metres to the anchor, either None: "within 50 m of the road"
    negated: bool = False           # "not next to the road", "away from the road": the objects the relation leaves out
    excluded_plan: ReferringPlan | None = None  # what the sentence leaves out, read as an expression of its own:
    #                                 "every building except the largest one" -> "the largest building"
    anchor2_text: str | None = None  # the second anchor of "between the lake and the road" ("the road")
    anchor2_plan: ReferringPlan | None = None  # ... read as an expression of its own, as ``anchor_plan``
    anchor_plan: ReferringPlan | None = None  # the anchor read as an expression of its own, when it names a rule
    #                                 ("the largest lake"): answered as a query is, the relation measured to that
    point: tuple | None = None      # (u, v) of a point of the extent in [-0.5, 0.5], u to the right, v to the top:
    #                                 "closest to the top right corner" (0.5, 0.5), "nearest the centre" (0, 0)
    far_from_point: bool = False    # "the tank furthest from the centre": the object furthest from ``point``
    among: int | None = None        # how many the sentence says there are to choose from: "the smaller of the two
    #                                 grey-roofed buildings" ranks the two the model is surest of

    @property
    def candidate_texts(self) -> tuple:
        """The wordings whose candidates answer this plan (the noun phrase, and its singular when there is one)."""
        return tuple(t for t in (self.model_text, self.alt_text) if t)

    @property
    def texts(self) -> tuple:
        """Every text the model is asked for this plan: the candidates' wordings, then the anchor's."""
        return self.candidate_texts + self.anchor_texts

    @property
    def anchor_texts(self) -> tuple:
        """The texts the anchors (and what is left out) are found with: each one's own plan's, or its words as
        typed."""
        out: tuple = ()
        for text, plan in ((self.anchor_text, self.anchor_plan), (self.anchor2_text, self.anchor2_plan),
                           (None, self.excluded_plan)):
            out += plan.texts if plan is not None else ((text,) if text else ())
        return out

    @property
    def between(self) -> bool:
        """True for "between": the objects on the way from one anchor to another ("between the lake and the road",
        "between the two lakes")."""
        return self.relation == "between"

    @property
    def selective(self) -> bool:
        """True when candidates are chosen by a rule over the whole extent (not just kept or ranked by score)."""
        return self.ranks_all or self.region is not None

    @property
    def ranks_all(self) -> bool:
        """True when a rule ranks or filters every candidate of the extent (largest, furthest, nearest the anchor,
        larger than an area): the answer depends on candidates it does not keep."""
        return bool(self.size or self.extreme or self.anchor_text or self.area_m2 or self.point is not None)

    @property
    def furthest(self) -> bool:
        """True for a relation that wants the object furthest from its anchor ("the house furthest from the lake")."""
        return bool(self.relation and re.match(_FURTHEST_RE, self.relation))

    @property
    def asks_members(self) -> bool:
        """True when the answer is drawn from every member of the class: all of them (a plural), a number of them
        ("the two white tanks": the most confident, however faint the tile of the second), or the one(s) a rule
        ranks first among all of them ("the largest lake" presupposes the lakes)."""
        return self.cardinality != ONE or self.ranks_all

    @property
    def count(self) -> int | None:
        """How many objects the answer keeps (None = all)."""
        if self.cardinality == ALL:
            return None
        return 1 if self.cardinality == ONE else int(self.cardinality)

    def describe(self) -> str:
        keep = {ALL: "all", ONE: "one"}.get(self.cardinality, str(self.cardinality))
        parts = [f"find '{self.model_text}'", f"keep {keep}"]
        parts += list(self.understood)
        parts += [f"anchor: {p.describe()}" for p in (self.anchor_plan, self.anchor2_plan) if p is not None]
        if self.excluded_plan is not None:
            parts.append(f"except: {self.excluded_plan.describe()}")
        return "; ".join(parts)


def _direction(words: list[str]) -> tuple | None:
    """Words such as ["top", "left"], ["north", "west"] -> a (dx, dy) with components in {-1, 0, 1}."""
    dx = dy = 0
    for w in words:
        w = _COMPASS_ADJ.get(w, w)
        if w in _DIRS:
            vx, vy = _DIRS[w]
            dx, dy = dx or vx, dy or vy
    return (dx, dy) if (dx or dy) else None


def is_plural(noun: str) -> bool:
    """English plural by form: "buildings", "houses", "people" -> True; "bus", "glass", "water" -> False."""
    n = noun.lower().strip()
    if n in _IRREGULAR_PLURALS:
        return True
    return n.endswith("s") and not n.endswith(_NOT_PLURAL_ENDINGS) and len(n) > 2


def pluralize(noun: str) -> str:
    """A singular English noun -> its plural ("building" -> "buildings", "city" -> "cities", "bus" -> "buses")."""
    n = noun
    low = n.lower()
    if is_plural(low) or low in _MASS_NOUNS:
        return n
    if low in _IRREGULAR_SINGULAR_TO_PLURAL:
        return _IRREGULAR_SINGULAR_TO_PLURAL[low]
    if re.search(r"[^aeiou]y$", low):
        return n[:-1] + "ies"
    if re.search(r"(s|x|z|ch|sh)$", low):
        return n + "es"
    return n + "s"


def singularize(noun: str) -> str:
    """A plural English noun -> its singular ("buildings" -> "building", "cities" -> "city", "buses" -> "bus");
    a word that is not plural by form is returned as it is."""
    low = noun.lower()
    if low in _IRREGULAR_PLURAL_TO_SINGULAR:
        return _IRREGULAR_PLURAL_TO_SINGULAR[low]
    if not is_plural(low):
        return noun
    if re.search(r"[^aeiou]ies$", low):
        return noun[:-3] + "y"
    if re.search(r"(ss|x|z|ch|sh)es$", low):
        return noun[:-2]
    return noun[:-1]


#: words before a noun that say which or how many, not what: skipped when looking for the head noun
_DETERMINERS = ("the", "a", "an", "all", "every", "each", "any", "some")


def _head_noun_index(tokens: list[str]) -> int | None:
    """The head noun: the last word before the first preposition (after the first word), determiners skipped, and
    a participle that follows a noun before a preposition too ("the ship docked at the pier": "ship")."""
    end = next((i for i, t in enumerate(tokens) if i > 0 and t in _PREPOSITIONS), len(tokens))
    if 1 < end - 1 < len(tokens) - 1 and re.fullmatch(r"[a-z]{3,}ed", tokens[end - 1]) and \
            tokens[end - 2] not in ("the", "a", "an") and not tokens[end - 2].endswith("ed"):
        end -= 1
    for i in range(end - 1, -1, -1):
        if re.fullmatch(r"[a-z][a-z\-']*", tokens[i]) and tokens[i] not in _DETERMINERS:
            return i
    return None


def class_phrase(text: str) -> str | None:
    """What every answer to ``text`` must also be: its noun phrase without colour words and without what follows
    the head noun ("the orange car" -> "the car", "the building with a red roof" -> "the building", "the white
    storage tanks" -> "the storage tanks"). None where that is ``text`` itself or there is no head noun."""
    tokens = text.lower().split()
    head = _head_noun_index(tokens)
    if head is None or tokens[head].split("-")[0] in _COLOUR_WORDS:
        return None
    kept = [t for t in tokens[:head] if t.split("-")[0] not in _COLOUR_WORDS] + [tokens[head]]
    if len(kept) == len(tokens):  # nothing to leave out
        return None
    return " ".join(kept if kept[0] in ("the", "a", "an", "all") else ["the"] + kept)


def _names_plural(text: str) -> bool:
    """True when the head noun of ``text`` is plural ("the trees on the far right": every one there)."""
    tokens = text.split()
    head = _head_noun_index(tokens)
    return head is not None and is_plural(tokens[head])


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip(" ,;.")
    text = re.sub(r"\b(the|a|an)\s+(the|a|an)\b", r"\1", text)
    return text


#: words that ask for the answer rather than describe it: "show me", "where is", "can you find", "is there"
_REQUEST_RE = re.compile(
    r"^\s*(?:(?:please|kindly|now)\s+)?(?:(?:can|could|would|will)\s+you\s+(?:please\s+)?)?"
    r"(?:(?:show|find|give|get)(?:\s+me)?|locate|highlight|mark|outline|segment|select|detect|extract|map|identify|"
    r"delineate|draw|trace|digiti[sz]e|count|search\s+for|look\s+for|point\s+(?:to|at|out)|"
    r"i\s+(?:want|need|am\s+looking\s+for|'m\s+looking\s+for)(?:\s+to\s+(?:see|find))?|"
    r"where\s+(?:is|are)|which\s+(?:is|are)|what\s+(?:is|are)|is\s+there|are\s+there|there\s+(?:is|are)|"
    r"there's)(?=\s|$)[\s:,]*", re.IGNORECASE)
#: a question about which object: "which building is the largest?" -> "the building that is the largest"
_WHICH_RE = re.compile(r"^\s*which\s+(?P<np>(?:[\w\-']+\s+){0,3}?[\w\-']+)\s+(?P<v>is|are|lies|lie|stands|sits)\s+"
                       r"(?P<rest>.+)$", re.IGNORECASE)
_TRAILING_RE = re.compile(r"[\s,]*\b(?:please|for\s+me|thanks|thank\s+you)\b[\s.!?]*$|[\s.!?]+$", re.IGNORECASE)
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
             "ninth": 9, "tenth": 10}
_ORDINAL_RE = r"(?P<o>" + _alternation(_ORDINALS) + r"|\d+(?:st|nd|rd|th))"
#: area units -> m2
_AREA_UNITS = {"m2": 1.0, "m\u00b2": 1.0, "sqm": 1.0, "sq m": 1.0, "square metres": 1.0, "square meters": 1.0,
               "square metre": 1.0, "square meter": 1.0, "ha": 1e4, "hectare": 1e4, "hectares": 1e4, "km2": 1e6,
               "km\u00b2": 1e6, "square kilometres": 1e6, "square kilometers": 1e6, "acre": 4046.8564224,
               "acres": 4046.8564224, "sq ft": 0.09290304, "square feet": 0.09290304, "ft2": 0.09290304}
_AREA_UNIT = _alternation(re.escape(u) for u in _AREA_UNITS) + r"(?![a-z])"
_THOUSANDS = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?"  # "2,000", "12,500.5"
_DECIMAL = rf"{_THOUSANDS}|\d+(?:[.,]\d+)?"  # also "1.5", "1,5"


def _area_number(number: str, unit: str) -> str:
    """A regex for an area ("200 m2") whose number and unit are the groups named ``number`` and ``unit``."""
    return rf"(?P<{number}>{_DECIMAL})\s*(?P<{unit}>{_AREA_UNIT})"


_AT_LEAST = r"larger|bigger|greater|wider|more|over|above|exceeding|at\s+least|no\s+smaller|not\s+smaller"
_AT_MOST = r"smaller|less|under|below|at\s+most|no\s+larger|not\s+larger|no\s+bigger|not\s+bigger"
_AREA_RE = (r"(?:\b(?:that\s+(?:is|are)|which\s+(?:is|are)|with\s+an?\s+area\s+(?:of\s+)?|of\s+)?\s*)?"
            rf"(?:\bbetween\s+(?P<lo>{_DECIMAL})\s*(?P<lu>{_AREA_UNIT})?\s*and\s+{_area_number('hi', 'hu')}|"
            rf"\b(?P<cmp>{_AT_LEAST}|{_AT_MOST})(?:\s+than)?(?:\s+or\s+equal\s+to)?\s+{_area_number('n', 'u')})")


def _count(word: str) -> int | None:
    """How many a number word or numeral says ("3", "three", "a pair of"); None for a word that is none."""
    return int(word) if word.isdigit() else _NUMBERS.get(word)


def _number(text: str) -> float:
    """A number as typed: "2,000" (thousands), "1,5" (a decimal comma) or "1.5"."""
    return float(text.replace(",", "") if re.fullmatch(_THOUSANDS, text) else text.replace(",", "."))


def _area_bounds(m: re.Match) -> tuple:
    """(at least, at most) m2 of an area phrase: "larger than 1 ha" -> (10000, None)."""
    def m2(num, unit):
        return _number(num) * _AREA_UNITS[re.sub(r"\s+", " ", unit)]
    if m.group("hi"):
        return m2(m.group("lo"), m.group("lu") or m.group("hu")), m2(m.group("hi"), m.group("hu"))
    value = m2(m.group("n"), m.group("u"))
    return (value, None) if re.fullmatch(_AT_LEAST, m.group("cmp")) else (None, value)


_PICTURE = r"(?:image|scene|map|raster|picture|photo|mosaic|extent|area)"
#: a region of the picture, not of another object: "in the middle of the field" is no region of the raster
_OF_THE_PICTURE_ONLY = rf"(?!\s+of\s+(?!(?:the\s+|this\s+)?(?:whole\s+|entire\s+)?{_PICTURE}\b))"
#: a point of the picture as what an object is nearest or furthest from: "the house closest to the top right
#: corner", "the tank nearest the centre of the image", "the car furthest from the middle" (its edges are read as
#: extremes, its parts as regions); "the centre of the lake" is another object's
_PICTURE_POINT_RE = (rf"\b(?:(?P<far>{_FURTHEST_RE})\s+(?:away\s+)?from|{_NEAREST_RE}(?:\s+to)?)\s+(?:the\s+)?"
                     rf"(?:very\s+|exact\s+)?(?:(?P<w1>north|south|top|upper|bottom|lower)\s+(?P<w2>east|west|left|"
                     rf"right)(?:\s+corner)?|(?P<c>centre|center|middle))(?:\s+(?:point|part))?"
                     rf"(?:\s+of\s+(?:the\s+|this\s+)?(?:whole\s+|entire\s+)?{_PICTURE})?\b(?!\s+of\b)")
#: a directional relation: "to the left of the lake", "north-east of the road", "above the harbour"
_SIDE_RE = (r"(?:\b(?:(?:directly|just|immediately|due|right)\s+)?(?:(?:(?:closest|nearest)\s+)?"
            r"(?:to|on|in)\s+the\s+|(?:closest|nearest)\s+the\s+)?(?P<d>(?:north|south)(?:\s+(?:east|west))?|"
            r"east|west|(?:(?:top|bottom|upper|lower)\s+)?(?:left|right))(?:\s+(?:side|hand\s+side))?\s+of"
            r"|\b(?P<v>above|below))")


_LENGTH_UNITS = {"m": 1.0, "metre": 1.0, "metres": 1.0, "meter": 1.0, "meters": 1.0, "km": 1000.0,
                 "kilometre": 1000.0, "kilometres": 1000.0, "kilometer": 1000.0, "kilometers": 1000.0, "ft": 0.3048,
                 "foot": 0.3048, "feet": 0.3048, "yd": 0.9144, "yard": 0.9144, "yards": 0.9144, "mi": 1609.344,
                 "mile": 1609.344, "miles": 1609.344}
_LENGTH_UNIT = _alternation(re.escape(u) for u in _LENGTH_UNITS) + r"(?![a-z0-9\u00b2])"
_WITHIN = (r"within|less\s+than|under|closer\s+than|no\s+more\s+than|no\s+further\s+than|no\s+farther\s+than|"
           r"at\s+most|up\s+to")
_FURTHER = r"more\s+than|over|further\s+than|farther\s+than|at\s+least|beyond"
#: a relation by distance: "within 50 m of the river", "more than 1 km from the road", "at least 200 ft away from"
_DISTANCE_RE = (rf"\b(?:(?:that\s+)?(?:is|are|lies|lie|lying|located|situated)\s+)?(?P<cmp>{_WITHIN}|{_FURTHER})\s+"
                rf"(?P<n>{_DECIMAL})\s*(?P<u>{_LENGTH_UNIT})\s+(?:away\s+)?(?:of|from|to)\s+(?P<anchor>.+)$")
#: a relation denied: "not next to the road", "that is not near the lake", "away from the road"
_NEGATED_RE = (r"\b(?:(?:that|which)\s+)?(?:(?:is|are)\s+not|isn't|aren't|not)"
               r"(?:\s+(?:parked|located|situated|lying|standing|built|found))?\s*$")


def _distance_bounds(m: re.Match) -> tuple:
    """(at least, at most) metres of a distance phrase: "within 1 km of" -> (None, 1000)."""
    metres = _number(m.group("n")) * _LENGTH_UNITS[m.group("u")]
    return (None, metres) if re.fullmatch(_WITHIN, m.group("cmp")) else (metres, None)


def _plain_request(sentence: str) -> str:
    """The sentence less the words that ask for it ("show me the tanks, please" -> "the tanks"); unchanged when
    nothing would be left."""
    out = _WHICH_RE.sub(r"the \g<np> that \g<v> \g<rest>", sentence, count=1)
    out = _TRAILING_RE.sub("", _REQUEST_RE.sub("", out, count=1))
    out = re.sub(r"[()\[\]{}\"\u201c\u201d]", " ", out).strip()
    return " ".join(out.split()) or sentence


def _relation_match(text: str) -> re.Match | None:
    """The first relation of ``text`` and its anchor (the rest of the sentence). A participle before "by" belongs to
    the relation ("the pond surrounded by trees": near the trees, the pond), unless nothing names the object
    before it ("the shed by the road")."""
    for participle in (r"|(?P<pp>[a-z]+ed\s+by)", ""):
        m = re.search(rf"\b(?:(?:right|directly|just|immediately)\s+)?(?:{_RELATION_RE}|(?P<away>away\s+from)|"
                      rf"(?P<between>(?:somewhere\s+|midway\s+|halfway\s+)?between){participle})\b\s+"
                      r"(?P<anchor>.+)$", text)
        if not (m and m.groupdict().get("pp")):
            return m
        if re.search(r"[a-z]", re.sub(r"\b(?:the|a|an)\b", "", text[: m.start()])):  # a noun before the participle
            return m
    return None


def _excluded_phrase(phrase: str, whole: str) -> str:
    """What "except ..." leaves out as a noun phrase of its own, the sentence's noun standing in for "one(s)" or
    completing a phrase that names none ("except the largest", "other than the white ones", "but not those in the
    north" -> "the largest building", "the white buildings", "the buildings in the north")."""
    tokens = whole.split()
    head = _head_noun_index(tokens)
    noun = tokens[head] if head is not None else "ones"
    singular, plural = (singularize(noun), noun) if is_plural(noun) else (noun, pluralize(noun))
    phrase = re.sub(r"^(?:those|these)\b", "the " + plural, phrase.strip())
    phrase = re.sub(r"\bones\b", plural, re.sub(r"\bone\b(?!\s+of\b)", singular, phrase))
    bare = rf"(?:the\s+)?(?:(?P<n>{_NUMBER_RE})\s+)?(?:{_SIZE_RE}|[a-z]+most|{_ORDINAL_RE})"
    done = re.fullmatch(bare, phrase)
    if done and head is not None:  # "the red boxes except the largest": the largest red box
        words = [t for t in tokens[:head] if t not in _DETERMINERS]
        return " ".join([phrase] + words + [plural if done.group("n") else singular])
    return phrase if phrase.split()[0] in ("the", "a", "an", "all", "every") else "the " + phrase


def _comparative(text: str) -> re.Match | None:
    """The first size comparative of ``text`` that picks one of a few ("the larger lake", "the smaller of the two
    tanks"): not one before "than", nor one said of a plural ("the bigger tanks" are some of them)."""
    for m in re.finditer(rf"\b{_COMPARATIVE_RE}\b(?!\s+than\b)", text):
        after = text[m.end():].split()
        end = next((i for i, t in enumerate(after) if t in _PREPOSITIONS or t in ("is", "are")), len(after))
        if not (end and is_plural(after[end - 1])):
            return m
    return None


def _resolved_anchor(anchor: str, depth: int) -> ReferringPlan | None:
    """The anchor of a relation read as an expression of its own when it singles objects out: by a rule ("the
    largest lake", "the building in the top left", "the two tanks") or by its colours or the words after its noun
    ("the red-roofed building", "the building with a blue roof": ``class_phrase`` differs). The engine answers it
    over the extent as it answers a query, and the relation is measured to that answer. A noun phrase without them
    ("the lake", "the storage tank") names a class, and the relation is to any of its objects: "the tank next to
    the lake" is next to a lake, whichever."""
    if depth < 1:
        return None
    sub = parse_expression(anchor, anchor_depth=depth - 1)
    if sub.selective or sub.cardinality not in (ONE, ALL):
        return sub
    return sub if sub.cardinality == ONE and class_phrase(anchor) is not None else None


#: how many anchors deep an anchor is itself read as an expression ("the tree next to the house next to the lake":
#: 2); deeper ones stay words for the model, so that no sentence nests without end
ANCHOR_DEPTH = 3


def parse_expression(query: str, anchor_depth: int = ANCHOR_DEPTH) -> ReferringPlan:
    """Read a referring expression into a plan. Never raises for an odd sentence: it keeps what it cannot read.
    ``anchor_depth``: how many anchors deep an anchor is read as an expression of its own."""
    typed = " ".join(str(query).split())
    original = _plain_request(typed)
    text = original.lower()
    text = re.sub(r"[\u2010-\u2015]", "-", text)
    understood: list[str] = []
    for abbr, full in _ABBREV.items():
        text = re.sub(rf"\b{abbr}\b", full, text)
    text = re.sub(r"\b(north|south)[- ]?(east|west)ern\b", r"\1 \2", text)  # "north-western" -> "north west"
    text = re.sub(r"\b(north|south|top|bottom|upper|lower)[- ]?(east|west|left|right)\b", r"\1 \2", text)
    # what a size is measured by says no more than the superlative: "the building with the biggest footprint",
    # "the largest lake by area" -> "the biggest building", "the largest lake"
    text = re.sub(rf"\bwith\s+the\s+(?P<s>{_SIZE_RE})\s+(?:footprint|area|surface(?:\s+area)?|size|extent)\b",
                  r" \g<s> ", text)
    text = re.sub(r"\b(?:by|in)\s+(?:area|size|surface(?:\s+area)?|footprint)\b", " ", text)
    text = re.sub(rf"\b(?:exactly|precisely|just)\s+(?={_NUMBER_RE}\b)", "", text)
    # what is left out: "every building except the largest one", "the tanks other than the white ones"
    excluded_plan = None
    m = re.search(r"\s*,?\s*\b(?:except(?:\s+for)?|excluding|other\s+than|apart\s+from|but\s+not)\s+(?P<ex>.+)$", text)
    if m and m.start() > 0 and anchor_depth > 0:
        text = text[: m.start()]
        excluded = _excluded_phrase(m.group("ex"), text)
        excluded_plan = parse_expression(excluded, anchor_depth=anchor_depth - 1)

    # an area filter: "larger than 200 m2", "under 1 ha", "between 100 and 500 m2"
    area_m2 = None
    m = re.search(_AREA_RE, text)
    if m:
        area_m2 = _area_bounds(m)
        understood.append(f"area {m.group(0).strip()}")
        text = text[: m.start()] + " " + text[m.end():]

    cardinality: object = None
    size = None
    extreme = None
    region = None
    relation = None
    anchor = anchor_plan = anchor2 = anchor2_plan = distance_m = None
    negated = False
    side = None
    ordinal = 1
    among = None

    # words about the whole picture ("in the image") or every member ("every house") say nothing about what the
    # objects look like: the model is asked for the plain noun phrase ("the houses") instead
    scope_words = rf"\b(?:in|on|of|across|throughout|within)\s+(?:the|this)\s+(?:whole\s+|entire\s+)?{_PICTURE}\b"
    reworded = bool(re.search(scope_words, text) or re.match(r"\s*(?:every|each|any)\b", text))
    text = re.sub(scope_words, " ", text)
    only = bool(re.search(r"\b(?:only|single|sole|lone)\b", text))
    if only:  # a number word: it says how many, not what the object looks like, so the model is not asked it
        cardinality = ONE
        text = re.sub(r"\b(?:one\s+and\s+)?(?:only|single|sole|lone)\b", " ", text)
    # an ordinal ranks by a rule the sentence names: "the second largest", "the third tank from the left"
    m = re.search(rf"\b{_ORDINAL_RE}\s+(?=(?:{_SIZE_RE}|[a-z]+most|most|furthest|farthest|closest|nearest)\b)",
                  text) or (re.search(rf"\b{_ORDINAL_RE}\b", text)
                            if re.search(rf"\b(?:from|on)\s+the\s+{_DIR_WORD}\b", text) else None)
    if m:
        o = m.group("o")
        ordinal = _ORDINALS[o] if o in _ORDINALS else int(re.sub(r"\D", "", o) or 1)
        text = text[: m.start()] + " " + text[m.end():]
        f = re.search(rf"\b(?:from|on)\s+the\s+(?:very\s+|far\s+)?(?P<w>{_DIR_WORD})(?:\s+(?:side|edge|end|border))?\b",
                      text)
        if f:  # "from the left", "on the left": counted from that edge, as the leftmost is the first
            extreme = _direction([f.group("w")])
            understood.append(f"extreme {f.group(0)}")
            text = text[: f.start()] + " " + text[f.end():]
        if ordinal > 1:
            understood.append(f"ordinal {ordinal}")
    else:  # "the first building in the top left": the first is the one the rule keeps anyway
        text = re.sub(r"\bthe\s+first\s+(?=[a-z])", "the ", text)
    # the picture's own edges are places, not objects: "the tank near the north edge", "the last house on the
    # right" -> "on the far north", "on the far right" (the furthest that way; for a plural, that part)
    text = re.sub(rf"\b(?:{_RELATION_RE}|at|on)\s+the\s+(?:very\s+)?(?P<w>{_DIR_WORD}|northern|southern|eastern|"
                  rf"western)\s+(?:edge|border|boundary|margin|end)(?:\s+of\s+(?:the\s+|this\s+)?{_PICTURE})?\b",
                  r"on the far \g<w>", text)
    # ... and a side named alone after a relation: "the court closest to the bottom (of the image)"
    text = re.sub(rf"\b{_RELATION_RE}\s+the\s+(?:very\s+)?(?P<w>{_DIR_WORD})(?:\s+(?:side|part))?"
                  rf"(?:\s+of\s+(?:the\s+|this\s+)?{_PICTURE})?\s*$", r"on the far \g<w>", text)
    if re.search(rf"\bthe\s+last\s+(?=[a-z].*\b(?:on|to|at)\s+the\s+{_DIR_WORD}\b)", text):
        text = re.sub(r"\bthe\s+last\s+", "the ", text)
        text = re.sub(rf"\b(?:on|to|at)\s+the\s+(?={_DIR_WORD}\b)", "on the far ", text, count=1)
    # a corner or the middle of the picture is a point, not an object: the objects ranked by their distance to it
    point, far_from_point = None, False
    m = re.search(_PICTURE_POINT_RE, text)
    if m and m.start() > 0:
        way = _direction([m.group("w1"), m.group("w2")]) if m.group("w1") else (0, 0)
        point, far_from_point = (0.5 * way[0], 0.5 * way[1]), bool(m.group("far"))
        understood.append(m.group(0).strip())
        text = text[: m.start()] + " " + text[m.end():]
    # "the closest house to the lake" -> "the house closest to the lake": the relation after its noun phrase
    text = re.sub(r"\b(closest|nearest)\s+(?!to\b)((?:[a-z\-']+\s+){0,3}?[a-z\-']+)\s+to\s+", r"\2 \1 to ", text)
    # relation: "X next to the lake" -> anchor "the lake" (the rest of the sentence after the relation word); a
    # directional one ("north of the lake") also keeps its side
    m = re.search(rf"{_SIDE_RE}\s+(?P<anchor>.+)$", text)
    distance = re.search(_DISTANCE_RE, text)
    if distance and distance.start() > 0:
        m, distance_m = distance, _distance_bounds(distance)
    elif m and m.start() > 0 and not re.fullmatch(rf"(?:the|this)\s+{_PICTURE}", m.group("anchor").strip()):
        side = _direction((m.group("d") or {"above": "top", "below": "bottom"}[m.group("v")]).split())
        relation = m.group(0)[: m.start("anchor") - m.start()].strip()
    else:
        m = _relation_match(text)
    if m and m.start() > 0:
        phrase = m.group("anchor").strip()
        # "between the lake and the road": two anchors; "between the two lakes": two of one
        ends = split_conjunction(phrase) if m.groupdict().get("between") else [phrase]
        anchor, anchor2 = [_tidy(e if e.split()[0] in ("the", "a", "an") else "the " + e) for e in ends[:2]] + \
            [None] * (2 - len(ends[:2]))
        relation = "between" if m.groupdict().get("between") else m.group(0)[: m.start("anchor") - m.start()].strip()
        anchor_plan = _resolved_anchor(anchor, anchor_depth)
        anchor2_plan = _resolved_anchor(anchor2, anchor_depth) if anchor2 else None
        text = text[: m.start()]
        denied = re.search(_NEGATED_RE, text)
        negated = bool(denied or m.groupdict().get("away")) and side is None and distance_m is None
        if denied and negated:
            text = text[: denied.start()]
            relation = f"not {relation}"
        understood.append(f"{relation} {_tidy(phrase if anchor2 else anchor)}")
    else:
        side = None

    # extremes: "northernmost", "leftmost", "furthest north", "most western", "top-most" (before the regions, which
    # would read "the most northern lake" as a lake in the north)
    m = re.search(r"\b(?:(?P<w0>north|south|top|upper|bottom|lower)\s+)?(?P<w>north|south|east|west|top|upper|bottom|"
                  r"lower|left|right)(?:ern)?[- ]?most\b", text) or \
        re.search(rf"\b(?:furthest|farthest|most)\s+(?:to\s+the\s+)?(?P<w>{_DIR_WORD}|northern|southern|eastern|"
                  rf"western|northerly|southerly|easterly|westerly)\b", text)
    if m and extreme is None:
        w = m.group("w").replace("erly", "").replace("ern", "")
        extreme = _direction([m.groupdict().get("w0") or "", w])  # "top left-most": the corner's way
        if extreme:
            understood.append(f"extreme {m.group(0)}")
            text = text[: m.start()] + " " + text[m.end():]

    # region: "in the top left (corner|part|half|quadrant)", "on the left", "in the north-west", "at the bottom"
    region_re = (rf"\b(?:in|on|at|to(?:wards)?|from)\s+(?:the\s+)?(?:very\s+|far\s+)?(?P<w1>{_DIR_WORD}|northern|"
                 rf"southern|eastern|western)(?:\s+(?P<w2>{_DIR_WORD}))?(?:[- ]?(?:hand|most))?"
                 r"(?:\s+(?:corner|part|half|side|quarter|quadrant|third|area|edge|section|portion|region|sector|"
                 rf"zone|margin|border|end|of the {_PICTURE}))*\b{_OF_THE_PICTURE_ONLY}")
    # the middle of the extent: "in the centre", "at the center of the image", "the central lake"
    centre_re = (r"\b(?:in|at|near|around)\s+(?:the\s+)?(?:very\s+|exact\s+)?(?:centre|center|middle)"
                 rf"(?:\s+(?:part|area|section|portion|region))?\b{_OF_THE_PICTURE_ONLY}")
    central_re = r"\b(?:most\s+central|central|cent(?:re|er)[- ]?most|middle[- ]?most)\b(?=\s+[a-z])"
    # a region named after the noun, bare: "building top left", "the building (top left)", "lake, north-east"
    after_re = (rf"(?<=[a-z])[\s,:]+(?P<w1>northern|southern|eastern|western|{_DIR_WORD})(?:\s+(?P<w2>{_DIR_WORD}))?"
                r"(?:\s+(?:corner|part|half|side|quarter|quadrant|area))?\s*$")
    # "northern", "top-left" used as an adjective before the noun: "the northern lake", "the top left building"
    adjective_re = (rf"\b(?:the\s+)?(?P<w1>northern|southern|eastern|western|{_DIR_WORD})(?:\s+(?P<w2>{_DIR_WORD}))?"
                    r"(?:\s+corner)?\b(?=\s+(?!most\b|of\b|and\b)[a-z])")
    # each reading in turn, the first that matches names the region; the adjective keeps its determiner
    for pattern, cut in ((region_re, 0), (centre_re, 0), (central_re, 0), (after_re, 0), (adjective_re, "w1")):
        m = re.search(pattern, text)
        if m:
            where = _direction([m.group("w1"), m.group("w2") or ""]) if "w1" in m.groupdict() else (0, 0)
            if pattern is region_re and re.search(r"\bfar\s", m.group(0)) and not m.group("w2") and \
                    extreme is None and not _names_plural(text[: m.start()]):
                extreme = where  # "the tank on the far left": the leftmost, not any in the left half
                understood.append(f"extreme {m.group(0).strip(' ,:')}")
            else:
                region = where
                understood.append(f"region {m.group(0).strip(' ,:')}")
            text = text[: m.start(cut)] + " " + text[m.end():]
            break

    # size superlatives, and comparatives that pick one of a few ("the larger of the two lakes"; "the bigger
    # tanks" are some of them, left to the model)
    m = re.search(rf"\b{_SIZE_RE}\b", text) or _comparative(text)
    if m:
        word = m.group(0)
        size = (_SIZE | _COMPARATIVE)[word]
        understood.append(f"size {word}")
        text = text[: m.start()] + " " + text[m.end():]

    if size or extreme or point:  # "the larger one of the two tanks": "one" stands for the noun, no number
        text = re.sub(rf"\bones?\s+(?=of\s+(?:all\s+)?(?:the\s+|these\s+|those\s+)?{_NUMBER_RE}\b)", "", text)
    # counts: "the two white tanks", "3 buildings", "both lakes"
    m = re.search(rf"\b(?:the\s+|all\s+)?(?P<n>{_NUMBER_RE})\b(?!\s*(?:m|km|metres|meters|%|px))", text)
    if m:
        n = m.group("n")
        k = _count(n)
        before = text[: m.start("n")].split()
        if re.search(r"\bof\s+(?:all\s+)?(?:the\s+|these\s+|those\s+)?$", text[: m.start("n")]):
            among = k if k and k > 1 else None  # "the smallest of the three lakes": what to choose from, no count
            text = text[: m.start("n")] + " " + text[m.end("n"):]
        elif any(w in _PREPOSITIONS for w in before[1:]):
            pass  # a number of another noun ("the house between the two lakes", "the road with two lanes")
        elif k and (k > 1 or n != "one"):
            cardinality = k
            understood.append(f"count {k}")
            text = text[: m.start("n")] + " " + text[m.end("n"):]
        elif n == "one":
            cardinality = ONE
            text = text[: m.start("n")] + " " + text[m.end("n"):]
    if re.match(r"\s*(all|every|each|any)\b", text):
        cardinality = ALL if cardinality is None else cardinality

    text = _tidy(text)
    # partitives: "the largest of (all) the tanks", "one of the lakes", "the smallest of these ponds" -> "the
    # tanks", "the lakes", "the ponds"
    text = re.sub(r"^(?:the\s+)?(?:one\s+|each\s+|any\s+)?of\s+(?:all\s+)?(?P<det>(?:the|these|those)\s+)?",
                  lambda m: "the " if m.group("det") else "", text)
    # "the leftmost vehicle among the three": what to choose from
    m = re.search(rf"\s+(?:among|amongst|of)\s+(?:all\s+)?(?:the\s+|these\s+|those\s+)?(?P<n>{_NUMBER_RE})$", text)
    if m and among is None:
        among = _count(m.group("n"))
    # what a moved superlative, region or relation leaves: "the tank that is (the) largest (one)", "the lake
    # situated in the south", "the vehicle is on the right of the building" -> "the tank", "the lake", "the vehicle"
    text = _tidy(re.sub(r"\s+(?:(?:that|which|who)\s+)?(?:is|are|lies|lie|sits|sit|stands|stand)(?:\s+the)?"
                        r"(?:\s+ones?)?$|"
                        r"(?<=\S)\s+(?:the\s+)?ones?$|\s+(?:(?:that|which|who)\s+)?(?:(?:is|are)\s+)?(?:located|"
                        r"situated|lying|standing|positioned|placed|sitting|found|seen|visible|parked|built)$|"
                        r"\s+(?:among|amongst|of)\s+(?:all\s+)?(?:the\s+|these\s+|those\s+)?"
                        rf"(?:{_NUMBER_RE}|them|all)$",
                        "", text))
    # a colour or other word said of the object after it: "the airplane (in the middle) is white" -> "the white
    # airplane"
    said = re.fullmatch(r"(?P<np>.+?)\s+(?:is|are)\s+(?P<adj>[a-z][a-z\-]*)", text)
    if said and said.group("adj") not in _PREPOSITIONS and said.group("adj") not in ("the", "a", "an", "not"):
        np_tokens = said.group("np").split()
        cut = 1 if np_tokens[0] in ("the", "a", "an", "all") else 0
        text = " ".join(np_tokens[:cut] + [said.group("adj")] + np_tokens[cut:])
    if cardinality is None and relation and re.match(f"{_NEAREST_RE}|{_FURTHEST_RE}", relation):
        cardinality = ONE  # "tank nearest lake": a superlative of distance
    if cardinality is None and (size or extreme or ordinal > 1 or point):
        cardinality = ONE  # a superlative picks one unless a number says otherwise ("the two largest tanks")
    if among is not None and among > 1:
        understood.append(f"among {among}")
    else:
        among = None
    plan = dict(query=typed, size=size, extreme=extreme, region=region, relation=relation, anchor_text=anchor,
                understood=tuple(understood), side=side, ordinal=ordinal if (size or extreme or anchor or point) else 1,
                point=point, far_from_point=far_from_point, among=among,
                area_m2=area_m2, anchor_plan=anchor_plan, distance_m=distance_m, negated=negated,
                anchor2_text=anchor2, anchor2_plan=anchor2_plan, excluded_plan=excluded_plan)
    tokens = text.split()
    head = _head_noun_index(tokens)
    if not tokens or head is None:  # nothing left to find: give the model the sentence as typed
        return ReferringPlan(model_text=original, cardinality=ALL if cardinality is None else cardinality, **plan)
    noun = tokens[head]
    plural = is_plural(noun)
    if cardinality is None:
        # "the building" / "a car" name one object; a bare noun ("building", "red") is a class search
        singular_det = tokens[0] in ("the", "a", "an", "this", "that")
        cardinality = ONE if singular_det and not plural and noun not in _MASS_NOUNS else ALL
    if not (size or extreme or region or anchor or area_m2 or excluded_plan or point or
            cardinality not in (ONE, ALL) or reworded):
        # nothing to choose over the extent: the model gets the sentence as typed (less "only" and any request)
        return ReferringPlan(model_text=text if only else original, cardinality=cardinality, **plan)
    # a choice over the extent needs every candidate: the noun phrase in the plural (as a class is named), and in
    # the singular too when that differs (a model may know "the lake" but never have read "the lakes")
    if tokens[0] in ("a", "an", "every", "each", "any", "some"):
        tokens[0] = "the"
    elif tokens[0] not in ("the", "all"):
        tokens.insert(0, "the")
        head += 1
    if plural:  # "the two white tanks" is also asked as "the white tank"
        singular_tokens = tokens[:head] + [singularize(noun)] + tokens[head + 1:]
        if singular_tokens[0] == "all":
            singular_tokens[0] = "the"
        singular = _tidy(" ".join(singular_tokens))
    else:
        singular = _tidy(" ".join(tokens))
    if not plural and noun not in _MASS_NOUNS:
        tokens[head] = pluralize(noun)
    model_text = _tidy(" ".join(tokens))
    alt = singular if singular and singular != model_text else None
    return ReferringPlan(model_text=model_text, alt_text=alt, cardinality=cardinality, **plan)


#: words a part of "X and Y" can end on that describe rather than name ("the black and white cars" is one class)
_DESCRIBING = {"red", "white", "black", "blue", "green", "yellow", "orange", "gray", "grey", "brown", "purple",
               "pink", "dark", "light", "large", "small", "big", "tall", "long", "round", "square", "new", "old",
               "bright", "pale", "flat", "tiny", "huge", "wide", "narrow", "central", "middle", "northern",
               "southern", "eastern", "western", *_DIRS}


def split_conjunction(query: str) -> list[str]:
    """The referents of "the lakes and ponds", "buildings, roads and trees", "the largest building and the smallest
    tank" as sentences of their own (a part without a determiner borrows the first part's: "ponds" -> "the
    ponds"), or ``[query]`` when the sentence is not plainly a list of noun phrases: a part holding a preposition or
    a relation ("the tank between the lake and the road", "houses and gardens next to the lake" read as one), or a
    part that ends on a describing word ("the black and white cars")."""
    whole = " ".join(str(query).split())
    parts = [p.strip() for p in re.split(r"\s*(?:,\s*and\s+|,\s*&\s*|,\s*|\s+and\s+|\s*&\s*)", _plain_request(whole))
             if p.strip()]
    if len(parts) < 2:
        return [whole]
    determiner = re.match(r"(?:the|all(?:\s+the)?|every|all of the)\s+", parts[0], re.IGNORECASE)
    out = []
    for k, part in enumerate(parts):
        tokens = part.lower().split()
        if any(t in _PREPOSITIONS for t in tokens[1:]) or re.search(rf"\b{_RELATION_RE}\b", part.lower()):
            return [whole]
        noun = tokens[-1].strip(".,;:!?")
        if noun in _DESCRIBING or not re.fullmatch(r"[a-z][a-z\-']*", noun):
            return [whole]
        starts = re.match(r"(?:the|a|an|all|every|each|both|\d+|" + _alternation(_NUMBERS) + r")\b", tokens[0])
        if not (starts or is_plural(noun) or noun in _MASS_NOUNS):
            return [whole]
        out.append(part if (starts or k == 0 or not determiner) else determiner.group(0) + part)
    return out
