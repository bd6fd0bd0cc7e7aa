"""Label lists shipped as data (see SOURCES.md)."""
