"""The four CIFT Markets services; each subpackage runs as its own process."""
