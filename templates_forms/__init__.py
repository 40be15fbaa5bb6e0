"""Form template families (YAML data), shipped as package data; see ocr.templates.family for the format."""
