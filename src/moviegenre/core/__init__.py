"""What every layer shares: the user-facing error, atomic file writes, paths and the stage runner."""
