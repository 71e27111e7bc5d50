"""The bundled samples: a character we wrote (with its lorebook and a drawn avatar) and a story opening."""
