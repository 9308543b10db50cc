"""The capture store: validated, idempotent events (fix attempts, feedback, search clicks,
sessions, skills) written by many processes into one SQLite file, and the JSON-lines importer.
Memory learning, search click learning and the session marts all read from here."""
