"""Small shared utilities of skpart."""
