"""Trained weights shipped with the reader (made by train/)."""
