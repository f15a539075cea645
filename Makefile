# make run   - start the app on 127.0.0.1:8501 with the default model (ADDRESS=..., PORT=... to change;
#              WORKLIST=DIR shows the DICOM listener's results from its --work-dir on /worklist)
# make test  - install what the tests need and run the whole suite (browser tests included)
# make clean - remove .venv, the pytest cache and runs/ (with the fold models a train-cv run resumes from)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501
# The app answers on this machine only unless the operator names another address
# (ADDRESS=0.0.0.0 for every interface; configure sign-in in .streamlit/secrets.toml first).
ADDRESS ?= 127.0.0.1
WORKLIST ?= $(PNEUMO_WORKLIST)

.PHONY: run test test-fast bench clean debian-tools

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.app-installed: requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.app-installed
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

run: $(VENV)/.app-installed
	PNEUMO_WORKLIST="$(WORKLIST)" $(PY) -m streamlit run app.py --server.address $(ADDRESS) --server.port $(PORT) --server.headless true

# Debian packages the tests drive, as command:package: Chromium for the browser tests, dcmtk's
# encoders (dcmcjpeg, dcmcjpls, dcmconv) for the JPEG and big-endian films that
# tests/test_dicom_encodings.py reads (pydicom itself encodes none of them), dicom3tools'
# dciodvfy, which checks the result objects against the standard's IODs, and Orthanc, the
# PACS the DICOM workflow tests send films through.
DEBIAN_TOOLS := chromium:chromium dcmcjpeg:dcmtk dcmcjpls:dcmtk dcmconv:dcmtk dciodvfy:dicom3tools \
                /usr/sbin/Orthanc:orthanc

debian-tools:
	@missing=$$(for pair in $(DEBIAN_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || echo $${pair##*:}; done | sort -u | xargs); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's $$missing for the tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "The tests need Debian's $$missing: run 'sudo apt-get install $$missing' and try again."; \
	    exit 1; \
	  fi; \
	fi

test: $(VENV)/.dev-installed debian-tools
	$(PY) -m pytest

test-fast: $(VENV)/.dev-installed debian-tools
	$(PY) -m pytest -m "not slow and not browser"

bench: $(VENV)/.app-installed
	$(PY) -m pneumo bench --json

clean:
	rm -rf $(VENV) .pytest_cache runs
