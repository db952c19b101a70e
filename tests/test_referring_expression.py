"""Reading what an expression asks of the whole extent (rs2sam2_qgis/pipeline/expression.py)."""
import pytest

from rs2sam2_qgis.pipeline.expression import (
    ALL,
    ONE,
    class_phrase,
    is_plural,
    parse_expression,
    pluralize,
    singularize,
    split_conjunction,
)


@pytest.mark.parametrize("query, text, card", [
    ("the buildings", "the buildings", ALL),
    ("all the storage tanks", "all the storage tanks", ALL),
    ("buildings", "buildings", ALL),
    ("red", "red", ALL),                      # a bare word is a class search
    ("building", "building", ALL),
    ("the water", "the water", ALL),          # mass noun
    ("the red-roofed building", "the red-roofed building", ONE),
    ("a car on the horizontal road", "a car on the horizontal road", ONE),
    ("the only building with a red roof", "the building with a red roof", ONE),  # "only" is a count
    ("the runway", "the runway", ONE),
])
def test_plain_expressions_keep_their_text_and_number(query, text, card):
    plan = parse_expression(query)
    assert (plan.model_text, plan.cardinality) == (text, card)
    assert not plan.selective and plan.alt_text is None


@pytest.mark.parametrize("query, size", [
    ("the largest building", "max"), ("the biggest house", "max"), ("the largest of all the buildings", "max"),
    ("the smallest pond", "min"), ("the tiniest storage tank", "min"), ("the longest road", "max"),
])
def test_superlatives_pick_one_by_area_among_all_candidates(query, size):
    plan = parse_expression(query)
    assert plan.size == size and plan.cardinality == ONE
    assert is_plural(plan.model_text.split()[-1])         # the model is asked for every candidate
    if not is_plural(query.split()[-1]):  # a singular noun is also asked as typed (a model may know only that)
        assert plan.alt_text is not None and not is_plural(plan.alt_text.split()[-1])


@pytest.mark.parametrize("query, region", [
    ("the building in the top left", (-1, 1)), ("the house in the bottom-right corner", (1, -1)),
    ("the tank on the left", (-1, 0)), ("the north-west lake", (-1, 1)), ("the NE tank", (1, 1)),
    ("the building in the southern part of the image", (0, -1)), ("the top left building", (-1, 1)),
])
def test_regions_in_image_and_compass_words(query, region):
    plan = parse_expression(query)
    assert plan.region == region and plan.cardinality == ONE and plan.extreme is None


@pytest.mark.parametrize("query, extreme", [
    ("the northernmost lake", (0, 1)), ("the leftmost tree", (-1, 0)), ("the house furthest south", (0, -1)),
    ("the westernmost storage tank", (-1, 0)), ("the bottom-most car", (0, -1)), ("the most easterly tank", (1, 0)),
])
def test_extremes(query, extreme):
    plan = parse_expression(query)
    assert plan.extreme == extreme and plan.cardinality == ONE and plan.region is None


@pytest.mark.parametrize("query, n, text", [
    ("the two white tanks", 2, "the white tanks"), ("3 cars", 3, "the cars"), ("both lakes", 2, "the lakes"),
    ("the two largest tanks", 2, "the tanks"), ("a pair of red cars", 2, "the red cars"),
])
def test_counts(query, n, text):
    plan = parse_expression(query)
    assert plan.cardinality == n and plan.model_text == text


@pytest.mark.parametrize("query", ["the car behind the two trucks", "the road with two lanes",
                                   "the building with 3 floors"])
def test_a_number_after_a_preposition_counts_another_noun(query):
    plan = parse_expression(query)
    assert (plan.cardinality, plan.model_text) == (ONE, query)


def test_quantifiers_and_picture_words_are_reworded_for_the_model():
    """'every house in the image' says nothing about houses: the model is asked for the houses."""
    plan = parse_expression("every house in the image")
    assert (plan.model_text, plan.alt_text, plan.cardinality) == ("the houses", "the house", ALL)
    assert parse_expression("the buildings in this scene").model_text == "the buildings"
    assert parse_expression("all the storage tanks").model_text == "all the storage tanks"  # as typed


def test_relations_name_their_anchor():
    plan = parse_expression("the tank right next to the harbour")
    assert (plan.model_text, plan.anchor_text, plan.cardinality) == ("the tanks", "the harbour", ONE)
    assert plan.texts == ("the tanks", "the tank", "the harbour")
    plan = parse_expression("houses near the river")
    assert (plan.model_text, plan.anchor_text, plan.cardinality) == ("the houses", "the river", ALL)
    assert parse_expression("the building closest to the water").anchor_text == "the water"


@pytest.mark.parametrize("query, anchor, reading", [
    ("the tree next to the largest lake", "the largest lake", "find 'the lakes'; keep one; size largest"),
    ("the car nearest the building in the top left", "the building in the top left",
     "find 'the buildings'; keep one; region in the top left"),
    ("the tree closest to the red-roofed building", "the red-roofed building",
     "find 'the red-roofed building'; keep one"),
    ("the house beside the two white tanks", "the two white tanks", "find 'the white tanks'; keep 2; count 2"),
    ("the tree closest to the house next to the lake", "the house next to the lake",
     "find 'the houses'; keep one; next to the lake"),
])
def test_an_anchor_that_singles_objects_out_is_read_as_an_expression_of_its_own(query, anchor, reading):
    plan = parse_expression(query)
    assert (plan.anchor_text, plan.anchor_plan.describe()) == (anchor, reading)
    assert plan.texts == plan.candidate_texts + plan.anchor_plan.texts
    assert plan.describe().endswith(f"; anchor: {reading}")


@pytest.mark.parametrize("query", ["the tank next to the lake", "houses near the river", "the tree beside the road",
                                   "the car north of the lake", "the car next to the storage tank"])
def test_a_bare_noun_anchor_names_a_class_whose_every_object_counts(query):
    plan = parse_expression(query)
    assert plan.anchor_plan is None and plan.texts[-1] == plan.anchor_text


@pytest.mark.parametrize("query", ["", "   ", "???", "the", "of the", "12", "صورة المباني", "x" * 500,
                                   "the the the", "in the top left", "largest"])
def test_odd_sentences_never_fail_and_keep_a_text(query):
    plan = parse_expression(query)
    assert plan.model_text is not None and plan.cardinality in (ONE, ALL) or isinstance(plan.cardinality, int)


def test_plural_forms():
    assert [pluralize(w) for w in ("building", "city", "bus", "church", "tree", "lake", "person")] == \
        ["buildings", "cities", "buses", "churches", "trees", "lakes", "people"]
    assert is_plural("houses") and is_plural("people") and not is_plural("bus") and not is_plural("glass")


@pytest.mark.parametrize("query, text, card", [
    ("show me all the storage tanks", "all the storage tanks", ALL),
    ("where is the runway?", "the runway", ONE),
    ("Find the runway, please", "the runway", ONE),
    ("can you find buildings with red roofs", "buildings with red roofs", ALL),
    ("is there a swimming pool?", "a swimming pool", ONE),
    ("highlight every tank", "the tanks", ALL),
    ("the lone tank", "the tank", ONE),
])
def test_requests_around_the_description_are_not_asked_of_the_model(query, text, card):
    plan = parse_expression(query)
    assert (plan.model_text, plan.cardinality) == (text, card) and plan.query == query


@pytest.mark.parametrize("query, ordinal, size, extreme", [
    ("the second largest building", 2, "max", None), ("the 3rd smallest pond", 3, "min", None),
    ("the second tank from the left", 2, None, (-1, 0)), ("the first building on the right", 1, None, (1, 0)),
    ("the third house from the top", 3, None, (0, 1)), ("the second northernmost lake", 2, None, (0, 1)),
])
def test_ordinals_rank_by_the_rule_the_sentence_names(query, ordinal, size, extreme):
    plan = parse_expression(query)
    assert (plan.ordinal, plan.size, plan.extreme, plan.cardinality) == (ordinal, size, extreme, ONE)
    assert plan.model_text.split()[-1] in ("buildings", "ponds", "tanks", "houses", "lakes")


def test_an_ordinal_without_a_ranking_rule_is_left_to_the_model():
    assert parse_expression("the second building").ordinal == 1


@pytest.mark.parametrize("query", ["the pond in the centre", "the building in the middle of the image",
                                   "the central building", "the tank at the center"])
def test_the_middle_of_the_extent_is_a_region(query):
    plan = parse_expression(query)
    assert plan.region == (0, 0) and plan.cardinality == ONE and plan.model_text.split()[-1].endswith("s")


@pytest.mark.parametrize("query, side, anchor", [
    ("the tank to the left of the lake", (-1, 0), "the lake"), ("the house north of the road", (0, 1), "the road"),
    ("the building to the north-east of the lake", (1, 1), "the lake"), ("the car below the bridge", (0, -1),
                                                                          "the bridge"),
])
def test_directional_relations_keep_their_side_and_anchor(query, side, anchor):
    plan = parse_expression(query)
    assert (plan.side, plan.anchor_text, plan.region, plan.cardinality) == (side, anchor, None, ONE)


@pytest.mark.parametrize("query, text, attrs", [
    ("the most northern lake", "the lakes", {"extreme": (0, 1), "region": None}),
    ("the farthest west building", "the buildings", {"extreme": (-1, 0), "region": None}),
    ("the tank in the bottom-right quadrant", "the tanks", {"region": (1, -1)}),
    ("the smallest of the three lakes", "the lakes", {"size": "min", "cardinality": ONE}),
    ("the tank that is largest", "the tanks", {"size": "max"}),
    ("the building which is the largest one", "the buildings", {"size": "max"}),
    ("the closest house to the lake", "the houses", {"anchor_text": "the lake", "relation": "closest to"}),
    ("the building in the south of the image", "the buildings", {"region": (0, -1), "side": None}),
    ("the white tanks (2)", "the white tanks", {"cardinality": 2}),
    ("which building is the largest?", "the buildings", {"size": "max", "cardinality": ONE}),
    ("the building with the biggest footprint", "the buildings", {"size": "max"}),
    ("the largest lake by area", "the lakes", {"size": "max", "anchor_text": None}),
    ("the top-left-most building", "the buildings", {"extreme": (-1, 1), "region": None}),
    ("the building in the north-western corner", "the buildings", {"region": (-1, 1)}),
    ("the lake situated in the south-east", "the lakes", {"region": (1, -1)}),
    ("the storage tank located next to the lake", "the storage tanks", {"anchor_text": "the lake"}),
    ("exactly two white tanks", "the white tanks", {"cardinality": 2}),
    ("building top left", "the buildings", {"region": (-1, 1)}),
    ("the first building in the top left", "the buildings", {"region": (-1, 1), "ordinal": 1}),
    ("first aid stations in the north", "the first aid stations", {"region": (0, 1)}),
    ("the building (top left)", "the buildings", {"region": (-1, 1), "cardinality": ONE}),
    ("tank nearest lake", "the tanks", {"anchor_text": "the lake", "cardinality": ONE}),
    ("the house furthest from the lake", "the houses", {"anchor_text": "the lake", "furthest": True}),
    ("the cars parked along the road", "the cars", {"anchor_text": "the road", "cardinality": ALL}),
])
def test_phrasings_outside_the_templates_read_like_their_plain_forms(query, text, attrs):
    plan = parse_expression(query)
    assert plan.model_text == text
    assert {k: getattr(plan, k) for k in attrs} == attrs


@pytest.mark.parametrize("query, parts", [
    ("the lakes and ponds", ["the lakes", "the ponds"]),
    ("buildings, roads and trees", ["buildings", "roads", "trees"]),
    ("show me the storage tanks and the ships", ["the storage tanks", "the ships"]),
    ("the largest building and the smallest tank", ["the largest building", "the smallest tank"]),
    ("the black and white cars", ["the black and white cars"]),                 # one class, two colours
    ("the north and south buildings", ["the north and south buildings"]),
    ("the tank between the lake and the road", ["the tank between the lake and the road"]),
    ("houses and gardens next to the lake", ["houses and gardens next to the lake"]),  # the relation binds both
    ("the white tanks", ["the white tanks"]),
])
def test_a_list_of_referents_splits_into_its_noun_phrases_and_nothing_else_does(query, parts):
    assert split_conjunction(query) == parts


@pytest.mark.parametrize("query, text, card, area", [
    ("buildings larger than 200 m2", "the buildings", ALL, (200.0, None)),
    ("all lakes bigger than 1 ha", "all lakes", ALL, (10000.0, None)),
    ("the tanks smaller than 50 m²", "the tanks", ALL, (None, 50.0)),
    ("buildings between 100 and 2,000 square metres", "the buildings", ALL, (100.0, 2000.0)),
    ("the building larger than 1,5 ha", "the buildings", ONE, (15000.0, None)),
    ("houses with an area of at least 120 m2", "the houses", ALL, (120.0, None)),
    ("the buildings above 100 m2 in the north", "the buildings", ALL, (100.0, None)),
])
def test_an_area_filter_is_read_in_m2(query, text, card, area):
    plan = parse_expression(query)
    assert (plan.model_text, plan.cardinality, plan.area_m2, plan.side) == (text, card, area, None)
    assert plan.asks_members  # the filter needs every candidate, a singular's search may not stop early


@pytest.mark.parametrize("query, alt", [
    ("the two white tanks", "the white tank"), ("the lakes larger than 640 m2", "the lake"),
    ("all the tanks in the north", "the tank"), ("the 3 cities in the east", "the city"),
    ("both buses", "the bus"), ("the churches next to the river", "the church"),
])
def test_a_plural_chosen_over_the_extent_is_also_asked_in_the_singular(query, alt):
    """A model may know one number of a noun and not the other: 'the two white tanks' also asks 'the white tank'."""
    assert parse_expression(query).alt_text == alt


def test_singular_forms():
    assert [singularize(w) for w in ("buildings", "cities", "buses", "churches", "boxes", "houses", "people",
                                     "bus", "water")] == \
        ["building", "city", "bus", "church", "box", "house", "person", "bus", "water"]


@pytest.mark.parametrize("text, phrase", [
    ("the orange car", "the car"), ("the orange cars", "the cars"), ("the dark-blue car", "the car"),
    ("the building with a red roof", "the building"), ("the red-roofed building", "the building"),
    ("the white storage tanks", "the storage tanks"), ("white cars", "the cars"),
    ("the buildings", None), ("roof", None), ("the parking lot", None), ("red", None), ("the red", None), ("", None),
])
def test_the_class_an_answer_must_also_be_is_its_noun_without_colours(text, phrase):
    assert class_phrase(text) == phrase


def test_anchors_nest_a_few_levels_deep_and_no_sentence_nests_without_end():
    plan = parse_expression("the tree" + " next to the house" * 1000)
    depth = 0
    while plan.anchor_plan is not None:
        plan, depth = plan.anchor_plan, depth + 1
    assert depth == 3 and plan.anchor_text.startswith("the house next to the house")


@pytest.mark.parametrize("query, text, card, bounds", [
    ("buildings within 50 m of the river", "the buildings", ALL, (None, 50.0)),
    ("the house within 1.5 km of the lake", "the houses", ONE, (None, 1500.0)),
    ("the tanks more than 200 metres from the road", "the tanks", ALL, (200.0, None)),
    ("the trees at least 100 ft away from the road", "the trees", ALL, (100 * 0.3048, None)),
    ("the cars that are less than 30 meters from the building", "the cars", ALL, (None, 30.0)),
])
def test_a_relation_by_distance_keeps_its_bounds_in_metres(query, text, card, bounds):
    plan = parse_expression(query)
    assert (plan.model_text, plan.cardinality) == (text, card)
    assert [v is None for v in plan.distance_m] == [v is None for v in bounds]
    assert [v for v in plan.distance_m if v is not None] == pytest.approx([v for v in bounds if v is not None])
    assert plan.anchor_text is not None and not plan.negated


@pytest.mark.parametrize("query, text, card, anchor", [
    ("the building not next to the road", "the buildings", ONE, "the road"),
    ("the houses that are not near the lake", "the houses", ALL, "the lake"),
    ("the car away from the building", "the cars", ONE, "the building"),
    ("the car that is not parked next to the building", "the cars", ONE, "the building"),
])
def test_a_denied_relation_keeps_its_anchor(query, text, card, anchor):
    plan = parse_expression(query)
    assert (plan.model_text, plan.cardinality, plan.anchor_text, plan.negated) == (text, card, anchor, True)
    assert plan.describe().startswith(f"find '{text}'")


@pytest.mark.parametrize("query, region, extreme, text", [
    ("the lone tree in the middle of the field", None, None, "the tree in the middle of the field"),
    ("the tank in the middle of the image", (0, 0), None, "the tanks"),
    ("the storage tank on the far left", None, (-1, 0), "the storage tanks"),
    ("the trees on the far right side", (1, 0), None, "the trees"),
])
def test_a_region_is_of_the_picture_and_the_far_side_is_an_extreme(query, region, extreme, text):
    plan = parse_expression(query)
    assert (plan.region, plan.extreme, plan.model_text) == (region, extreme, text)


def test_in_the_north_of_an_object_is_a_side_of_it_not_words_for_the_model():
    plan = parse_expression("the house in the north of the city")
    assert (plan.model_text, plan.side, plan.anchor_text) == ("the houses", (0, 1), "the city")


@pytest.mark.parametrize("query, anchors, card", [
    ("the house between the lake and the road", ("the lake", "the road"), ONE),
    ("the tanks between the lake and the road", ("the lake", "the road"), ALL),
    ("the tank between the two lakes", ("the two lakes", None), ONE),
    ("the building midway between the road and the river", ("the road", "the river"), ONE),
])
def test_between_names_two_anchors_or_two_of_one(query, anchors, card):
    plan = parse_expression(query)
    assert (plan.between, plan.anchor_text, plan.anchor2_text, plan.cardinality) == (True, *anchors, card)
    assert plan.model_text in ("the houses", "the tanks", "the buildings")


@pytest.mark.parametrize("query, text, card, extreme, region", [
    ("the last building on the right", "the buildings", ONE, (1, 0), None),
    ("the last houses on the left", "the houses", ALL, None, (-1, 0)),
    ("the tank near the north edge", "the tanks", ONE, (0, 1), None),
    ("the tank at the bottom edge of the image", "the tanks", ONE, (0, -1), None),
    ("the tanks close to the eastern border", "the tanks", ALL, None, (1, 0)),
])
def test_the_pictures_edges_and_the_last_one_that_way_are_places_not_objects(query, text, card, extreme, region):
    plan = parse_expression(query)
    assert (plan.model_text, plan.cardinality, plan.extreme, plan.region, plan.anchor_text) == (
        text, card, extreme, region, None)


@pytest.mark.parametrize("query, text, relation, anchor", [
    ("the pond surrounded by trees", "the ponds", "surrounded by", "the trees"),
    ("the house bordered by the river", "the houses", "bordered by", "the river"),
    ("the shed by the road", "the sheds", "by", "the road"),  # a noun in -ed is the object, not a participle
])
def test_a_participle_before_by_belongs_to_the_relation(query, text, relation, anchor):
    plan = parse_expression(query)
    assert (plan.model_text, plan.relation, plan.anchor_text) == (text, relation, anchor)


@pytest.mark.parametrize("query, text, understood", [
    ("The vehicle is on the right of the building", "the vehicles", "on the right of the building"),
    ("the building is at the top left", "the buildings", "region at the top left"),
    ("the cars are next to the house", "the cars", "next to the house"),
    ("the building is the largest", "the buildings", "size largest"),
])
def test_a_copula_after_the_noun_is_not_asked_of_the_model(query, text, understood):
    plan = parse_expression(query)
    assert plan.model_text == text and understood in plan.understood


@pytest.mark.parametrize("query, text, card", [
    ("the airplane in the middle of the image is white", "the white airplanes", ONE),  # said after the noun
    ("there is a white airplane in the center", "the white airplanes", ONE),
    ("the leftmost vehicle among the three", "the vehicles", ONE),  # a number of another phrase: no count
    ("the ship docked at the bottom of the harbor", "the ship docked at the bottom of the harbor", ONE),
    ("a bridge crossing the river in the middle of the image", "the bridges crossing the river", ONE),
])
def test_remote_sensing_wordings_keep_their_noun(query, text, card):
    """Wordings of the field's datasets (RRSIS-D, RefSegRS): the head noun stays the object's, never a verb,
    a participle or a region word ("the ship dockeds", "the bottom" as an adjective, "the rivers")."""
    plan = parse_expression(query)
    assert (plan.model_text, plan.cardinality) == (text, card)


@pytest.mark.parametrize("query, text, excluded", [
    ("every building except the red one", "the buildings", "find 'the red building'; keep one"),
    ("the tanks other than the white ones", "the tanks", "find 'the white tanks'; keep all"),
    ("all buildings except the largest", "all buildings", "find 'the buildings'; keep one; size largest"),
    ("the houses apart from the two largest", "the houses", "find 'the houses'; keep 2; size largest; count 2"),
    ("the trees but not those in the north", "the trees", "find 'the trees'; keep all; region in the north"),
    ("all the buildings, except for the church", "all the buildings", "find 'the church'; keep one"),
])
def test_what_except_leaves_out_is_an_expression_of_its_own(query, text, excluded):
    plan = parse_expression(query)
    assert (plan.model_text, plan.cardinality, plan.excluded_plan.describe()) == (text, ALL, excluded)
    assert plan.describe().endswith(f"except: {excluded}") and set(plan.excluded_plan.texts) <= set(plan.texts)


@pytest.mark.parametrize("query, text, card, point, far", [
    ("the building closest to the top-right corner", "the buildings", ONE, (0.5, 0.5), False),
    ("tank nearest bottom left corner of the image", "the tanks", ONE, (-0.5, -0.5), False),
    ("the two houses nearest to the north-east corner", "the houses", 2, (0.5, 0.5), False),
    ("the pond closest to the centre of the image", "the ponds", ONE, (0.0, 0.0), False),
    ("the car furthest from the middle", "the cars", ONE, (0.0, 0.0), True),
])
def test_a_corner_or_the_middle_of_the_picture_is_a_point_not_an_object(query, text, card, point, far):
    plan = parse_expression(query)
    assert (plan.model_text, plan.cardinality, plan.point, plan.far_from_point, plan.anchor_text) == (
        text, card, point, far, None)
    assert plan.ranks_all


@pytest.mark.parametrize("query, anchor", [
    ("the tank nearest the centre of the lake", "the centre of the lake"),
    ("the house closest to the middle of the road", "the middle of the road"),
])
def test_the_middle_of_an_object_stays_an_anchor(query, anchor):
    plan = parse_expression(query)
    assert (plan.point, plan.anchor_text) == (None, anchor)


@pytest.mark.parametrize("query, size, text", [
    ("the larger of the two lakes", "max", "the lakes"),
    ("the smaller of both tanks", "min", "the tanks"),
    ("the leftmost one of the three cars", None, "the cars"),
    ("the bigger building next to the road", "max", "the buildings"),
    ("the smaller pond", "min", "the ponds"),
    ("the larger one of the two white tanks", "max", "the white tanks"),
    ("the smallest of these three ponds", "min", "the ponds"),  # how many there are is not what is asked
])
def test_a_comparative_picks_one_of_a_few_as_the_superlative_does(query, size, text):
    plan = parse_expression(query)
    assert (plan.size, plan.cardinality, plan.model_text) == (size, ONE, text)
    assert plan.among == (3 if "three" in query else 2 if (" two " in query or "both" in query) else None)


def test_a_comparative_before_than_compares_with_something_else_and_is_not_a_size():
    assert parse_expression("the lake larger than the pond").size is None


def test_a_comparative_said_of_a_plural_names_some_of_them_and_is_left_to_the_model():
    plan = parse_expression("the bigger tanks")
    assert (plan.size, plan.cardinality, plan.model_text) == (None, ALL, "the bigger tanks")


@pytest.mark.parametrize("query, text, extreme, point, side, anchor", [
    ("A vehicle is parked on the right side of the road", "the vehicles", None, None, (1, 0), "the road"),
    ("the tennis court closest to the bottom", "the tennis courts", (0, -1), None, None, None),
    ("the tank nearest to the top of the image", "the tanks", (0, 1), None, None, None),
    ("the house closest to the top right", "the houses", None, (0.5, 0.5), None, None),
    ("the house closest to the top right of the lake", "the houses", None, None, (1, 1), "the lake"),
    ("the car nearest the left side of the road", "the cars", None, None, (-1, 0), "the road"),
])
def test_a_side_of_the_picture_or_of_an_object_after_closest_is_read_as_such(query, text, extreme, point, side,
                                                                               anchor):
    """"closest to the bottom" is the picture's bottom edge, "closest to the top right of the lake" a side of the
    lake; "is parked" is no noun ("the vehicle ises" was asked of the model)."""
    plan = parse_expression(query)
    assert (plan.model_text, plan.cardinality, plan.extreme, plan.point, plan.side, plan.anchor_text) == (
        text, ONE, extreme, point, side, anchor)
