"""The web layer: thin routes over the task manager, the pages, and owner identity."""
