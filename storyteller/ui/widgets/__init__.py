"""Pieces the tabs share: streaming lines, the background-task bridge, choices, errors and editors.

Nothing here builds a tab; tabs import from here, never from each other.
"""
