"""Recordings: the format, the queue-fed writer and the store of recorded sessions."""
