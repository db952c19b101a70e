"""A model factory module that records its import (tests of the py: refusal: a refused spec must import nothing).

Importing it writes its name to the file named by $RS2SAM2_IMPORT_MARK (when set), so a test sees an import in
another process too.
"""
import os
from pathlib import Path

if os.environ.get("RS2SAM2_IMPORT_MARK"):
    Path(os.environ["RS2SAM2_IMPORT_MARK"]).write_text(__name__)


def model():
    from tests.colour_model import ColourModel

    return ColourModel(64)
