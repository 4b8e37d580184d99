"""One module per `lrsearch` sub-command: `add_arguments(parser)` and `main(args)`."""
