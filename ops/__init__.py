"""The application: the operator commands (up, demo, status, explain) and the code that starts the whole stack."""

# what a command that needs the Prefect API says without one: the stack's own shell has it, another shell needs the
# line `landing up` prints
NO_API = (
    "PREFECT_API_URL is not set: start the stack with `make up`, or in another shell run the `export` line it prints "
    "(export PREFECT_API_URL=http://127.0.0.1:4200/api for the default port)"
)
