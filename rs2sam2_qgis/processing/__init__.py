"""Processing provider "rs2sam2" with the algorithm "Segment by text" (rs2sam2:segment_by_text)."""
