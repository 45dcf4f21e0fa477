"""Worker processes and threads for the DataLoader (see issue 3; being built)."""
