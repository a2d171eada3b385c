"""The product on one machine: the dev gateway, and the runner behind `make demo` / `make up`."""
