"""Sampling presets: the preset model and library (`presets`) and the foreign formats it imports (`preset_import`)."""
