"""Qt widgets of the plugin: the dock panel and the model settings dialog."""
