"""The model of a plugin run (dock or Processing), with the plugin's rule for model code.

A "py:module:callable" spec imports and runs Python code. In the plugin a person types one only in Model settings
> Your own model (saved as settings.CUSTOM_MODEL_KEY); a run reaches it by the spec "custom". A py: spec anywhere
else (a Processing parameter, a Processing model file, a project, the dock's remembered preset) may have been
written by someone else and would run their code on this machine: it is refused, before anything is imported.
"""
from __future__ import annotations

from . import settings
from .pipeline.model_spec import DEMO, ModelSpecError, refuse_code

#: the spec that names the model code typed in Model settings > Your own model
CUSTOM = "custom"


def plugin_model(spec: str) -> tuple[str, bool]:
    """(model spec for the engine, allow_code) for the model a dock or Processing run names; raises ModelSpecError
    for a py: spec, and for "custom" when no model code was typed in Model settings."""
    spec = (spec or "").strip() or DEMO
    if spec == CUSTOM:
        code = settings.custom_model()
        if not code:
            raise ModelSpecError("no model of your own is set: type py:module:callable in rs2sam2 > Model settings "
                                 "> Your own model, or choose 'demo', a preset or a checkpoint file")
        return code, True
    refuse_code(spec)
    return spec, False
