"""The data folder as a whole: backup into one archive and restore into an empty folder (`backup.py`)."""
