"""The shared runtime every service uses the same way: config, bootstrap, errors, I/O helpers."""
