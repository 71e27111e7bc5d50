"""The app's tabs, one module (or, for the Chat tab, one package) each, in the order the page shows them.

Each has build(services) that creates its components and wires its own events; a tab that other tabs
link to returns a typed link (storyteller/ui/links.py) and never imports another tab.
"""
