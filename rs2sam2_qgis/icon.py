"""Where the plugin's icon lives (the toolbar, the dock's menu entry, the Processing provider and algorithm)."""
from pathlib import Path

ICON_PATH = str(Path(__file__).resolve().parent / "icon.png")
