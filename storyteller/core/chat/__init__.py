"""Chats and stories: the services that write replies and keep them, the reply stream, and chat files."""
