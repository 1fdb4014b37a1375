"""The installed-product acceptance suite (a package, so its conftest is not `conftest`)."""
