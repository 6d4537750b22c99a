"""Where the study lives: opening it (journal, SQLite, PostgreSQL), the journal backend, tail reads, the
loop's in-memory view, and trial heartbeats with the recovery of dead workers' trials."""
