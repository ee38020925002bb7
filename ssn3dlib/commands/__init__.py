"""One module per `ssn3d` sub-command (see ssn3dlib.cli.COMMANDS)."""
