# Two entry points for a fresh machine: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
# Debian packages: Tesseract is the title fallback of page identification; the tests also start a
# throwaway PostgreSQL server (tests/test_store.py) and drive the review app in Debian's chromium
# (tests/test_web_browser.py) and a throwaway redis-server (tests/test_cluster.py). Tests that need a missing one
# skip with a message.
DEMO_PACKAGES := tesseract-ocr tesseract-ocr-ind
TEST_PACKAGES := $(DEMO_PACKAGES) postgresql chromium redis-server

.PHONY: demo test samples messages system-packages test-system-packages clean

$(VENV)/.installed-%: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[$*]"
	touch $@

# Installs the packages $(1) when run as root and one is missing; the tests that need them skip without
# them, so a failed install warns instead of stopping.
define install-packages
	@if [ "$$(id -u)" = "0" ] && ! dpkg -s $(1) >/dev/null 2>&1; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null) \
		|| echo "warning: could not install $(1); the tests that need them will skip" >&2; \
	fi
endef

system-packages:
	$(call install-packages,$(DEMO_PACKAGES))

test-system-packages:
	$(call install-packages,$(TEST_PACKAGES))

demo: $(VENV)/.installed-synth system-packages
	$(VENV)/bin/formc template list
	$(VENV)/bin/formc synth kwk-gubernur-3 --count 2 --out out/demo/synth --seed 1 --profile phone
	@echo "The main job over samples/ (one submission per TPS folder): JSONL, an SQLite database, a preview PNG per photo:"
	rm -f out/demo/results.jsonl out/demo/results.db
	$(VENV)/bin/formc batch samples --out out/demo/results.jsonl --db sqlite:///out/demo/results.db --previews out/demo/previews
	@echo "One submission as an operator sees it (written with an arithmetic slip: it must come out REVIEW):"
	$(VENV)/bin/formc read samples/kwk-gubernur-3/tps-0002/page-*.jpg
	@echo "The batch against the samples' truth.json:"
	$(VENV)/bin/formc eval out/demo/results.jsonl samples
	@echo "Previews: out/demo/previews/<submission>/<photo>.png"

test: $(VENV)/.installed-test test-system-packages
	$(PY) -m pytest -q

# Rewrites the committed samples/ (deterministic for a given seed and library versions).
samples: $(VENV)/.installed-synth
	rm -rf samples/kwk-gubernur-3 samples/ppwp-2024 samples/kwk-bupati-tunggal
	$(VENV)/bin/formc synth kwk-gubernur-3 --count 2 --out samples/kwk-gubernur-3 --seed 2024 --profile phone --inconsistent 0.5
	$(VENV)/bin/formc synth ppwp-2024 --count 1 --out samples/ppwp-2024 --seed 2024 --profile phone
	$(VENV)/bin/formc synth kwk-bupati-tunggal --count 1 --out samples/kwk-bupati-tunggal --seed 2024 --profile scan

# The review app's messages (babel.cfg: ocr/ and its page templates, the review refusals' classes, sync refusals) merged into its
# Indonesian catalog; a new message shows in English until its msgstr there is filled in. The app compiles the .po
# when it starts: nothing to build.
MESSAGE_KEYWORDS := -k translate:2 -k refused:2 -k ReviewError -k Locked -k FourEyes -k LastAdmin -k NoSuchUser -k PhotosElsewhere \
	-k CompletedByOthers
messages: $(VENV)/.installed-test
	mkdir -p out
	$(VENV)/bin/pybabel -q extract -F babel.cfg $(MESSAGE_KEYWORDS) --no-location --sort-output -o out/messages.pot .
	$(VENV)/bin/pybabel -q update -i out/messages.pot -d ocr/web/locale --ignore-obsolete --no-fuzzy-matching

clean:
	rm -rf $(VENV) out build dist *.egg-info
