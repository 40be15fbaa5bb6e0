"""Form template families (YAML data), shipped as package data; see ocr.family for the format."""
