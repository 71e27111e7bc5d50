"""What the user keeps: character cards (the specs, the files, the library), personas, standalone lorebooks,
macros, and what a chat's prompt takes from a character (`character_context`)."""
