"""Rebuild tiny_spm.model: a small XLM-R style sentencepiece model (unigram, <unk>=0 <s>=1 </s>=2, as beit3.spm)
for the `tiny` preset, trained with sentencepiece's own trainer on a generated corpus of remote-sensing referring
expressions. Deterministic: python model_core/assets/make_tiny_spm.py"""
import io
import random
from pathlib import Path

import sentencepiece as spm

HERE = Path(__file__).resolve().parent
VOCAB = 512

COLOURS = ["red", "blue", "green", "white", "grey", "gray", "dark", "bright", "brown", "yellow", "black", "orange"]
SIZES = ["small", "large", "big", "tiny", "long", "wide", "narrow", "round", "square", "rectangular"]
OBJECTS = ["building", "house", "roof", "road", "river", "lake", "pond", "field", "tree", "forest", "car", "vehicle",
           "ship", "boat", "airplane", "plane", "bridge", "harbor", "parking lot", "tennis court", "stadium",
           "storage tank", "chimney", "dam", "golf field", "ground track field", "baseball field", "basketball court",
           "expressway", "train station", "windmill", "overpass", "crop land", "water", "farmland", "warehouse"]
WHERE = ["on the left", "on the right", "at the top", "at the bottom", "in the middle", "in the center",
         "near the river", "next to the road", "beside the lake", "in the upper left corner", "in the lower right",
         "close to the bridge", "far from the buildings", "along the coast", "between the two trees"]
TEMPLATES = ["the {c} {o} {w}", "a {s} {o} {w}", "{s} {c} {o}", "the {o} {w}", "there is a {s} {o} {w}",
             "the {s} {c} {o} {w}", "all the {o}s {w}", "the second {o} from the {side}", "the {o} that is {s}",
             "{o}", "The {C} {O} {w}.", "find the {c} {o}"]


def corpus(n=6000, seed=0):
    rng = random.Random(seed)
    for _ in range(n):
        t = rng.choice(TEMPLATES)
        o, c = rng.choice(OBJECTS), rng.choice(COLOURS)
        yield t.format(c=c, o=o, s=rng.choice(SIZES), w=rng.choice(WHERE), side=rng.choice(["left", "right"]),
                       C=c.capitalize(), O=o)
    # every plain ASCII letter, digit and common punctuation mark, so few captions hit <unk>
    yield " ".join("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"()-/&%")


def main():
    text = "\n".join(corpus())
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(text.splitlines()), model_writer=model, vocab_size=VOCAB, model_type="unigram",
        character_coverage=1.0, normalization_rule_name="identity", unk_id=0, bos_id=1, eos_id=2, pad_id=-1, seed_sentencepiece_size=100000,
        shuffle_input_sentence=False, num_threads=1, hard_vocab_limit=False, minloglevel=2,
    )
    (HERE / "tiny_spm.model").write_bytes(model.getvalue())
    print("wrote", HERE / "tiny_spm.model", len(model.getvalue()), "bytes")


if __name__ == "__main__":
    main()
