# Two entry points for a fresh machine: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
SYSTEM_PACKAGES := tesseract-ocr tesseract-ocr-ind

.PHONY: demo test system-packages clean

$(VENV)/.installed-%: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[$*]"
	touch $@

# Installs Tesseract (the title fallback of page identification) when run as root; skipped otherwise.
system-packages:
	@if [ "$$(id -u)" = "0" ] && ! command -v tesseract >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	fi

demo: $(VENV)/.installed-synth system-packages
	$(VENV)/bin/formc template list
	$(VENV)/bin/formc template render kwk-gubernur-3 --page 2 --dpi 40 --out out/demo/kwk-gubernur-3-page-2.png
	$(VENV)/bin/formc synth kwk-gubernur-3 --count 2 --out out/demo/synth --seed 1 --profile phone
	@echo "Samples with their truth: samples/; fresh synthetic photos: out/demo/"
	@for t in samples/*/truth.json; do echo "$$t"; $(PY) -m json.tool $$t | head -20; done

test: $(VENV)/.installed-test system-packages
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) out build dist *.egg-info
