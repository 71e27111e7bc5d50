"""Lorebooks as data: the three JSON formats with their field codecs (`book`), and which entries fire (`activation`).

Pure code: no storage, no files (the stored lorebooks and their files are in `core/cards/`).
"""
