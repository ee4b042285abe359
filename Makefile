# git-remote-s3: make test | make demo | make bench | make install [PREFIX=~/.local] |
# make uninstall

PYTHON ?= python3
VENV ?= .venv
PREFIX ?= $(HOME)/.local
BIN := $(VENV)/bin
SCRIPTS := git-remote-s3 lfs-s3-py git-s3

.PHONY: test test-moto lint demo bench install uninstall sync-shared venv git-lfs gnupg

# A venv with boto3, pytest and SeaweedFS (the S3 server the tests start).
$(BIN)/pytest: test/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r test/requirements.txt
	touch $@

venv: $(BIN)/pytest

$(BIN)/moto_server: $(BIN)/pytest test/requirements-moto.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r test/requirements-moto.txt
	touch $@

# The LFS tests need git-lfs, the encryption tests gpg: installed with apt-get when we
# are root, else we say how. From the package lists the machine has, when they still
# lead to a package: an update fetches 20 MB of lists first.
define apt_install
	@command -v $(2) >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq $(1) >/dev/null 2>&1 || \
	      { apt-get update -qq && apt-get install -y -qq $(1) >/dev/null; }; \
	  else \
	    echo "make: $(2) is missing; install it ($(3)) to run the $(4) tests" >&2; \
	  fi; }
endef

git-lfs:
	$(call apt_install,git-lfs,git-lfs,apt-get install git-lfs or https://git-lfs.com,LFS)

gnupg:
	$(call apt_install,gnupg,gpg,apt-get install gnupg,encryption)

# pyflakes reads the extension-less scripts when they are named: unused names fail.
lint: venv
	$(BIN)/pyflakes $(SCRIPTS) test bench

# Six workers (each with its own S3 server) on a two-core machine: much of a test is
# waiting (stalled answers, retry pauses), and with four the cores idled a tenth of
# the run. Idle workers steal queued tests; conftest.py's spread() orders them.
TEST_WORKERS ?= 6

# -rs: every skip says why in the summary (a server that did not start, what moto lacks).
test: venv git-lfs gnupg lint
	$(BIN)/pytest -q -rs -n $(TEST_WORKERS) --dist worksteal test

# The same suite against moto's standalone S3 server, a second implementation.
test-moto: venv $(BIN)/moto_server git-lfs gnupg lint
	S3_TEST_SERVER=moto $(BIN)/pytest -q -rs -n $(TEST_WORKERS) --dist worksteal test

demo: venv
	$(BIN)/python test/s3server.py bash test/scenarios/quickstart.sh

bench: venv
	$(BIN)/python bench/bench.py

# A private venv under PREFIX with boto3 at our minimum (read from git-remote-s3, where
# the scripts check it), and the scripts run by its python: nothing touches the system
# Python, so no root and no PEP 668 trouble. Run again, it upgrades boto3 and the
# scripts in place (and makes the venv again when its python is gone).
SHARE = $(PREFIX)/share/git-remote-s3
TOOLS_PYTHON = $(abspath $(SHARE))/venv/bin/python3
BOTO3_MINIMUM := $(shell sed -n 's/^BOTO3_MINIMUM = "\(.*\)"/\1/p' git-remote-s3)
ALIASES := git-remote-s3+zip git-lfs-s3

install:
	@test -n "$(BOTO3_MINIMUM)"
	@case "$(PREFIX)" in *" "*) echo "make: PREFIX may not hold a space (a #! line cannot)" >&2; exit 2;; esac
	@"$(TOOLS_PYTHON)" -m pip --version >/dev/null 2>&1 || \
	  $(PYTHON) -m venv --clear "$(SHARE)/venv"
	"$(TOOLS_PYTHON)" -m pip install --quiet --disable-pip-version-check --upgrade \
	  "boto3>=$(BOTO3_MINIMUM)"
	@install -d "$(PREFIX)/bin"
	@for name in $(SCRIPTS); do \
	  sed '1s|^#!.*|#!$(TOOLS_PYTHON)|' $$name > "$(PREFIX)/bin/.$$name.new" && \
	  chmod 755 "$(PREFIX)/bin/.$$name.new" && \
	  mv -f "$(PREFIX)/bin/.$$name.new" "$(PREFIX)/bin/$$name" || exit 1; done
	@ln -sf git-remote-s3 "$(PREFIX)/bin/git-remote-s3+zip"
	@ln -sf lfs-s3-py "$(PREFIX)/bin/git-lfs-s3"
	@echo "make: installed $(SCRIPTS) $(ALIASES) in $(abspath $(PREFIX)/bin)"
	@case ":$$PATH:" in *":$(abspath $(PREFIX)/bin):"*) ;; \
	  *) echo "make: add $(abspath $(PREFIX)/bin) to your PATH" >&2 ;; esac

# Only what install put there: scripts run by our venv's python, links to them.
uninstall:
	@for name in $(SCRIPTS) $(ALIASES); do \
	  file="$(PREFIX)/bin/$$name"; \
	  if [ -L "$$file" ] && case "$$(readlink "$$file")" in git-remote-s3|lfs-s3-py) true;; *) false;; esac \
	     || [ "$$(head -n 1 "$$file" 2>/dev/null)" = "#!$(TOOLS_PYTHON)" ]; then \
	    rm -f "$$file" && echo "make: removed $$file"; fi; done
	rm -rf "$(SHARE)"

sync-shared:
	$(PYTHON) test/shared_section.py
