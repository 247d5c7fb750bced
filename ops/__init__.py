"""The application: the operator commands (up, demo, status, explain) and the code that starts the whole stack."""
