"""Local worker processes fed over pipes, with batching both ways."""
