"""The built-in subcommands, one module each, declared as ``grpcmesh.commands`` entry points."""
