"""Helpers the tests share: model, card and Hub factories, the app and CLI runners, browser helpers, a scripted engine.

Fixtures live in tests/conftest.py; nothing here is a fixture, and no test module imports another.
"""
