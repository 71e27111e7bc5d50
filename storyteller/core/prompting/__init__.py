"""Prompt machinery every generation shares: instruct templates (data files), prompt assembly, token counts."""
