"""The generation task: its model, its store, its lifecycle and the sweeper."""
