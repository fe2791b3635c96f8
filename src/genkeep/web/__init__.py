"""The web layer: thin routes over the task service, the pages, and owner identity."""
