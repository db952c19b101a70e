"""The analyst's threshold is the trained decision: each family turns logits into the probability its loss trained
(model_core/decision.py), so probability >= 0.5 in the engine is the authors' logit > 0.5 for RS2-SAM2."""
from pathlib import Path

import numpy as np
import pytest
import torch

from model_core.config import ModelConfig
from model_core.decision import prob_from_logits
from model_core.model import RS2SAM2
from model_core.predictor import Predictor
from rs2sam2_qgis.pipeline.options import SegmentOptions

GOLDEN = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "golden" / "outputs.npz"


class StoredLogits(torch.nn.Module):
    """Returns fixed logits at the model's size, and turns them into probabilities exactly as RS2SAM2 does."""

    prob_rule = RS2SAM2.prob_rule
    logits_to_prob = RS2SAM2.logits_to_prob
    name = "stored-logits"

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits
        self.input_size = logits.shape[-1]

    def predict_masks(self, pixels, texts):
        return self.logits.expand(len(texts), -1, -1, -1)


@pytest.mark.skipif(not GOLDEN.is_file(), reason=f"golden fixture absent ({GOLDEN})")
def test_analyst_threshold_is_the_authors_decision_on_golden():
    """The authors' final_logits (1024 x 1024, their grid) through the analyst Predictor and the engine's threshold
    (stitching/polygonize keep probability >= threshold) give their final_mask pixel for pixel."""
    z = np.load(GOLDEN)
    logits, theirs = z["final_logits"], z["final_mask"][0] > 0.5
    pred = Predictor(StoredLogits(torch.from_numpy(logits)), device="cpu", precision="fp32")
    prob = pred.predict(np.zeros((1, 1024, 1024, 3), np.uint8), "the golden caption")[0, 0]
    ours = prob >= SegmentOptions().threshold
    assert np.array_equal(ours, theirs), f"{int((ours != theirs).sum())} of {ours.size} px differ"
    # the old rule (sigmoid(x) >= 0.5, i.e. logit >= 0) gave fatter masks than the trained decision
    fat = torch.sigmoid(torch.from_numpy(logits))[0, 0].numpy() >= 0.5
    assert fat.sum() > theirs.sum() and (fat & ~theirs).any()


def test_rules_decide_at_their_trained_points():
    x = torch.tensor([-3.0, 0.0, 0.25, np.nextafter(0.5, 0.0), 0.5, np.nextafter(0.5, 1.0), 0.75, 3.0],
                     dtype=torch.float32)
    assert torch.equal(prob_from_logits(x, "two_class") > 0.5, x > 0.5)
    assert torch.equal(prob_from_logits(x, "sigmoid") > 0.5, x > 0.0)
    with pytest.raises(ValueError, match="unknown prob rule"):
        prob_from_logits(x, "authors")


def test_families_name_the_rule_their_loss_trains():
    """RS2-SAM2's two-class CE + Dice is minimised where sigmoid(2x - 1) matches the target; RSRefSeg's BCE where
    sigmoid(x) does: at those probabilities each loss is at its (per-pixel) optimum."""
    from model_core.losses import weighted_ce
    from model_core.rsrefseg import RSRefSeg

    assert RS2SAM2.prob_rule == "two_class" and RSRefSeg.prob_rule == "sigmoid"
    x = torch.linspace(-2, 3, 501).view(1, 1, 1, -1)
    target = torch.ones(1, 1, 501, dtype=torch.long)
    # CE over [1 - x, x] with target 1 is -log of the two-class probability (class weights cancel in the mean)
    ce = torch.stack([weighted_ce(x[..., i:i + 1], target[..., i:i + 1]) for i in range(501)])
    torch.testing.assert_close(ce, -torch.log(prob_from_logits(x.flatten(), "two_class")), rtol=1e-5, atol=1e-6)


def test_old_checkpoint_configs_with_a_prob_rule_still_load():
    d = ModelConfig().to_dict()
    assert "prob_rule" not in d
    assert ModelConfig.from_dict({**d, "prob_rule": "sigmoid"}) == ModelConfig()
