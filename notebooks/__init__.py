"""Not a package to import: this file gives notebooks/conftest.py its own module name
(``notebooks.conftest``), so that pytest can import it next to tests/conftest.py."""
