"""sparkdl."""
