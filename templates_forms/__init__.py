"""Form template families (YAML data), shipped as package data.

See ocr.templates.family for the format and ocr.templates.catalog for how they are loaded."""
