"""Repository functions by topic. Each takes the session first and runs in its transaction."""
