"""The app's top-level tabs, one module or package each, in the order the page shows them: Chat, Story,
Characters (Cards, Personas, Lorebooks), Models (library and load settings), Presets, Experts, Settings
(General, Import / Export).

Each has build(services) that creates its components and wires its own events; a tab that other tabs
link to returns a typed link (storyteller/ui/links.py) and never imports another tab.
"""
