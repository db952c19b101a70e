"""The synthetic world's words: what the generator draws and names, and what it never draws (the benchmark's
absent referents). Its own module so that the generator, the mosaics and the negatives share it without importing
one another."""
from __future__ import annotations

ROOF_COLOURS = {
    "red": (172, 52, 42),
    "blue": (52, 84, 164),
    "gray": (128, 128, 134),
    "white": (226, 224, 216),
    "orange": (206, 124, 48),
}
VEHICLE_COLOURS = {
    "red": (190, 30, 30),
    "blue": (30, 60, 190),
    "white": (235, 235, 235),
    "black": (25, 25, 28),
    "yellow": (225, 200, 40),
}

NAMES = {
    "building": (["building", "house"], ["buildings", "houses"]),
    "tank": (["storage tank", "tank", "oil tank"], ["storage tanks", "tanks", "oil tanks"]),
    "vehicle": (["vehicle", "car"], ["vehicles", "cars"]),
    "tree": (["tree"], ["trees"]),
    "road": (["road"], ["roads"]),
    "water": (["water", "lake", "pond"], ["water"]),
}

#: objects the generator never draws: the benchmark's absent referents, never used in training
NEVER_DRAWN = ["the airport runway", "the swimming pools", "the ships in the harbour", "the solar panels",
               "the tennis court", "the football field", "the railway bridge", "the wind turbines",
               "the greenhouse", "the parked airplanes"]

#: colours the benchmark names for roofs / vehicles that no object has (absent referents, never used in training)
ABSENT_ROOF = [c for c in ("purple", "green", "pink", "black") if c not in ROOF_COLOURS]
ABSENT_VEHICLE = [c for c in ("green", "orange", "purple", "pink") if c not in VEHICLE_COLOURS]
#: colour words the generator never paints on roofs / vehicles, for training negatives: a model that only ever
#: read palette colours treats an unknown colour word as noise and answers "the purple car" with any car
OFF_PALETTE = {
    "building": [c for c in ("yellow", "brown", "beige", "turquoise", "cyan") if c not in ROOF_COLOURS],
    "vehicle": [c for c in ("gray", "brown", "beige", "turquoise", "cyan") if c not in VEHICLE_COLOURS],
}
assert not set(OFF_PALETTE["building"]) & set(ABSENT_ROOF), "training colours must stay out of the benchmark's"
assert not set(OFF_PALETTE["vehicle"]) & set(ABSENT_VEHICLE), "training colours must stay out of the benchmark's"
