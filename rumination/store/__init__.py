"""What runs leave behind: the database (SQLite, PostgreSQL), the run store, job claims and
exports."""
