"""One module per `explainer` subcommand; each exposes ``register(subparsers)``."""
