# StoreSight: `make demo` runs the main job, `make test` the tests. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# apt waits for another apt (an unattended upgrade, a parallel install) instead of failing
APT := apt-get -o DPkg::Lock::Timeout=600
SHARED_DATA ?= $(or $(firstword $(wildcard ../shared/data /work/shared/data)),../shared/data)

.PHONY: demo test lint pytest browser models eval bench screenshots clean package package-check \
	test-cluster haproxy

demo: models
	STORESIGHT_DATA_DIR=$(SHARED_DATA) $(BIN)/python -m demo.run $(if $(SOURCE),--source $(SOURCE)) $(ARGS)

test: lint pytest

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/mypy .

pytest: models browser
	$(BIN)/pytest

# Debian's Chromium drives the dashboard's browser test (tests/test_dashboard_browser.py);
# installed when missing and root, otherwise that test says what to install and skips
# (or fails, with STORESIGHT_TEST_REQUIRE_BROWSER=1)
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian's chromium for the dashboard browser test"; \
			export DEBIAN_FRONTEND=noninteractive; \
			$(APT) install -y -q chromium >/dev/null 2>&1 \
				|| { $(APT) update -q >/dev/null && $(APT) install -y -q chromium >/dev/null; }; \
		else echo "note: the dashboard browser test needs Debian's chromium: apt-get install chromium"; fi; \
	fi

# HAProxy (Debian's package, deploy/haproxy.cfg) in front of three API processes, one PostgreSQL
# database, 20 tills for a minute, one process SIGKILLed and one SIGTERMed (tests/test_cluster.py)
test-cluster: models haproxy
	STORESIGHT_DATA_DIR=$(SHARED_DATA) $(BIN)/pytest -q -m cluster tests/test_cluster.py

haproxy:
	@if ! command -v haproxy >/dev/null && [ ! -x /usr/sbin/haproxy ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian's haproxy for the cluster test"; \
			export DEBIAN_FRONTEND=noninteractive; \
			$(APT) install -y -q haproxy >/dev/null 2>&1 \
				|| { $(APT) update -q >/dev/null && $(APT) install -y -q haproxy >/dev/null; }; \
		else echo "make test-cluster needs Debian's haproxy: apt-get install haproxy"; exit 1; fi; \
	fi

models: $(INSTALLED)
	$(BIN)/storesight-models fetch

# The packaged kiosk: dist/storesight-kiosk/ (PyInstaller) and dist/storesight-kiosk_*.deb
package: models
	@command -v dpkg-deb >/dev/null || { echo "make package needs dpkg-deb (Debian's dpkg)"; exit 1; }
	$(BIN)/python installers/build.py

# Installs the .deb into this machine (root), runs it, upgrades over it and removes it
package-check: package
	$(BIN)/pytest -q -m package tests/test_package.py

eval: models
	$(BIN)/storesight-eval detection
	$(BIN)/storesight-eval agegender --json agegender.json
	$(BIN)/storesight-eval verify --json verify.json
	$(BIN)/storesight-eval identify --json identify.json
	STORESIGHT_DATA_DIR=$(SHARED_DATA) $(BIN)/storesight-eval openset --json openset.json

bench: models
	$(BIN)/python bench/embedder.py --json bench-embedder.json
	$(BIN)/python bench/kiosk_pipeline.py --json bench-kiosk.json
	$(BIN)/python bench/checkout_latency.py --json bench-checkout.json
	$(BIN)/python bench/recognition.py --json bench-recognition.json
	$(BIN)/python bench/sizing.py --json bench-sizing.json
	$(BIN)/python bench/decision.py --json bench-decision.json
	STORESIGHT_DATA_DIR=$(SHARED_DATA) $(BIN)/python bench/gui_responsiveness.py --json bench-gui.json
	$(BIN)/python bench/reports.py --json bench-reports.json
	STORESIGHT_DATA_DIR=$(SHARED_DATA) $(BIN)/python bench/cloud_load.py --json bench-cloud-load.json
	$(BIN)/python bench/index_versions.py --json bench-index-versions.json

# The cloud's container image (deploy/Dockerfile, docs/deploy.md) built with podman, and the
# image run against this machine's PostgreSQL (tests/test_container.py). Not part of make test
# (the build takes minutes). BASE_IMAGE, PIP_INDEX_URL, PODMAN, PODMAN_ARGS: deploy/build-image.sh
IMAGE ?= localhost/storesight-cloud:dev
.PHONY: image image-check
image:
	@if ! command -v podman >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman >/dev/null; \
		else echo "make image needs podman: apt-get install podman"; exit 1; fi; \
	fi
	sh deploy/build-image.sh $(IMAGE)

image-check: image $(INSTALLED)
	STORESIGHT_TEST_IMAGE=$(IMAGE) $(BIN)/pytest -q tests/test_container.py

# Debian packages Qt's xcb platform needs under Xvfb (installed when missing and root)
XVFB_PACKAGES := xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxcb-image0 \
	libxcb-render-util0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-shape0 libxcb-randr0

screenshots: models browser
	@if ! command -v xvfb-run >/dev/null || ! ldconfig -p | grep -q libxcb-cursor.so.0 \
		|| ! ldconfig -p | grep -q libxcb-icccm.so.4; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			$(APT) install -y -q $(XVFB_PACKAGES) >/dev/null; \
		else echo "make screenshots needs: apt-get install $(XVFB_PACKAGES)"; exit 1; fi; \
	fi
	STORESIGHT_DATA_DIR=$(SHARED_DATA) QT_QPA_PLATFORM=xcb xvfb-run -a \
		-s "-screen 0 1440x900x24" $(BIN)/python -m demo.screenshots --out screenshots
	STORESIGHT_SCREENSHOTS=1 $(BIN)/pytest -q tests/test_dashboard_browser.py -k head_office
	STORESIGHT_SCREENSHOTS=1 $(BIN)/pytest -q tests/test_staff_app_browser.py

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "StoreSight needs Python 3.11, found " + sys.version' 
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) models/files .mypy_cache .ruff_cache .pytest_cache
