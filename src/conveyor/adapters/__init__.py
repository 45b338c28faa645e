"""Backends for conveyor's contracts. Import a subpackage explicitly; none is imported here."""
