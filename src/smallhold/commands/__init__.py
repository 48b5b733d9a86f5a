"""Runtime-level CLI commands (models, embed, trace, serve, config); apps bring their own."""
